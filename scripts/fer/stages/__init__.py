"""What each rule does, one function per rule with the rule's name (rule ``prune_student`` ->
``scripts/prune_student.py`` -> :func:`fer.stages.compress.prune_student`).

Stage functions orchestrate: they load their inputs, call the algorithm modules (data, models, compression,
deploy, report) and write their outputs. Algorithm modules never import a stage.
"""
