# Training: the teacher, the KD student (distilled from the teacher) and the scratch student (the ablation:
# the same student trained without a teacher). Each job resumes from results/checkpoints/<variant>.pt after
# an interruption. The KD job keeps the teacher's logits on every batch it trained on (teacher_logits.pt):
# the KD fine-tunes of the same batch stream (pruning, QAT) read them instead of running the teacher.


rule train_teacher:
    input:
        dataset=DATASET,
    output:
        weights=run_path("weights/teacher.pt"),
        history=run_path("results/training/teacher.csv"),
        curves=run_path("results/plots/training/teacher.png"),
    log:
        f"{RUN_LOGS}/train_teacher.log",
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        arch=config["models"]["teacher"],
        hp=config["train"]["teacher"],
        augment=config["augment"],
        seed=RUN_SEED,
        precision=config["train"]["precision"],
        device=config["train"]["device"],
        checkpoint=checkpoint_path("teacher"),
    script:
        "../scripts/train_teacher.py"


rule train_student_kd:
    input:
        dataset=DATASET,
        teacher=run_path("weights/teacher.pt"),
    output:
        weights=run_path("weights/kd.pt"),
        history=run_path("results/training/kd.csv"),
        curves=run_path("results/plots/training/kd.png"),
        teacher_logits=run_path("results/training/teacher_logits.pt"),
    log:
        f"{RUN_LOGS}/train_student_kd.log",
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        variant="kd",
        arch=config["models"]["student"],
        hp=config["train"]["student"],
        kd=config["kd"],
        augment=config["augment"],
        seed=RUN_SEED,
        precision=config["train"]["precision"],
        device=config["train"]["device"],
        checkpoint=checkpoint_path("kd"),
    script:
        "../scripts/train_student.py"


use rule train_student_kd as train_student_scratch with:
    input:
        dataset=DATASET,
    output:
        weights=run_path("weights/scratch.pt"),
        history=run_path("results/training/scratch.csv"),
        curves=run_path("results/plots/training/scratch.png"),
    log:
        f"{RUN_LOGS}/train_student_scratch.log",
    params:
        variant="scratch",
        arch=config["models"]["student"],
        hp=config["train"]["student"],
        kd=None,
        augment=config["augment"],
        seed=RUN_SEED,
        precision=config["train"]["precision"],
        device=config["train"]["device"],
        checkpoint=checkpoint_path("scratch"),
