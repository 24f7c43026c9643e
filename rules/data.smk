rule synthesize_faces:
    output:
        faces=directory("results/synthetic"),
    log:
        f"{LOGS}/synthesize_faces.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        synthetic=config["synthetic"],
        classes=config["data"]["classes"],
        layout=config["data"]["layout"],
    script:
        "../scripts/synthesize_faces.py"


rule prepare_data:
    input:
        unpack(prepare_data_input),
    output:
        dataset="results/data/dataset.pt",
        manifest="results/data/manifest.csv",
    log:
        f"{LOGS}/prepare_data.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        root=data_root,
        test_root=data_test_root,
        unlisted=data_fingerprint,
        split=config["data"]["split"],
        classes=config["data"]["classes"],
        layout=config["data"]["layout"],
    script:
        "../scripts/prepare_data.py"


# Cross-validation (data.split.folds >= 3): the prepared images once, relabelled per fold (no decoding again).
rule split_fold:
    input:
        dataset="results/data/dataset.pt",
        manifest="results/data/manifest.csv",
    output:
        dataset="results/folds/{fold}/data/dataset.pt",
        manifest="results/folds/{fold}/data/manifest.csv",
    log:
        f"{LOGS}/split_fold_{{fold}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    params:
        fold="{fold}",
    script:
        "../scripts/split_fold.py"
