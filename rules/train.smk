rule train_teacher:
    input:
        dataset="results/data/dataset.pt",
    output:
        weights="weights/teacher.pt",
        history="results/training/teacher.csv",
        curves="results/plots/training/teacher.png",
    params:
        variant="teacher",
        arch=config["models"]["teacher"],
        hp=train_params("teacher"),
        kd=None,
        augment=config["augment"],
        seed=config["seed"],
        checkpoint=checkpoint_path("teacher"),
    log:
        f"{LOGS}/train_teacher.log",
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        ENV
    script:
        "../scripts/train_model.py"


rule train_student_kd:
    input:
        dataset="results/data/dataset.pt",
        teacher="weights/teacher.pt",
    output:
        weights="weights/kd.pt",
        history="results/training/kd.csv",
        curves="results/plots/training/kd.png",
    params:
        variant="kd",
        arch=config["models"]["student"],
        hp=train_params("student"),
        kd=config["kd"],
        augment=config["augment"],
        seed=config["seed"],
        checkpoint=checkpoint_path("kd"),
    log:
        f"{LOGS}/train_student_kd.log",
    threads: config["threads"]
    resources:
        mem_mb=3000,
        runtime=30,
    conda:
        ENV
    script:
        "../scripts/train_model.py"


rule train_student_scratch:
    input:
        dataset="results/data/dataset.pt",
    output:
        weights="weights/scratch.pt",
        history="results/training/scratch.csv",
        curves="results/plots/training/scratch.png",
    params:
        variant="scratch",
        arch=config["models"]["student"],
        hp=train_params("student"),
        kd=None,
        augment=config["augment"],
        seed=config["seed"],
        checkpoint=checkpoint_path("scratch"),
    log:
        f"{LOGS}/train_student_scratch.log",
    threads: config["threads"]
    resources:
        mem_mb=3000,
        runtime=30,
    conda:
        ENV
    script:
        "../scripts/train_model.py"
