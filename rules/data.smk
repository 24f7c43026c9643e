rule synthesize_faces:
    output:
        faces=directory("results/synthetic"),
    params:
        subjects=config["synthetic"]["subjects"],
        seed=config["synthetic"]["seed"],
        frames=config["synthetic"]["frames"],
        jitter=config["synthetic"]["jitter"],
    log:
        f"{LOGS}/synthesize_faces.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    conda:
        ENV
    script:
        "../scripts/make_synthetic.py"


rule prepare_data:
    input:
        unpack(prepare_data_input),
    output:
        dataset="results/data/dataset.pt",
        manifest="results/data/manifest.csv",
    params:
        root=data_root(),
        test_root=config["data"]["test_path"],
        split=config["data"]["split"],
    log:
        f"{LOGS}/prepare_data.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    script:
        "../scripts/prepare_data.py"
