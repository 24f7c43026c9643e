# Compression of the KD student: structured pruning (torch-pruning) with distillation fine-tuning,
# quantization (brevitas PTQ, optional QAT) of the KD student and of pruned levels, and ONNX export of
# every variant. Order: prune -> fine-tune -> quantize.


rule prune_student:
    input:
        student="weights/kd.pt",
        teacher="weights/teacher.pt",
        dataset="results/data/dataset.pt",
    output:
        weights="weights/pr_kd_{level}.pt",
    log:
        f"{LOGS}/prune_student_{{level}}.log",
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        level="{level}",
        ratios=lambda wc: config["prune"]["ratios"][wc.level],
        finetune=config["prune"]["finetune"],
        kd=config["kd"],
        augment=config["augment"],
        seed=config["seed"],
        checkpoint=lambda wc: checkpoint_path(f"pr_kd_{wc.level}"),
    script:
        "../scripts/prune_student.py"


rule quantize_student:
    input:
        source="weights/kd.pt",
        teacher="weights/teacher.pt",
        dataset="results/data/dataset.pt",
    output:
        weights="weights/ptq_kd_{bits}.pt",
    log:
        f"{LOGS}/quantize_student_{{bits}}.log",
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        variant="ptq_kd_{bits}",
        base="kd",
        bits="{bits}",
        act_bits=config["quantize"]["act_bits"],
        method=lambda wc: quant_method(wc.bits),
        calibration=config["quantize"]["calibration"],
        qat=config["quantize"]["qat"],
        kd=config["kd"],
        augment=config["augment"],
        seed=config["seed"],
        checkpoint=lambda wc: checkpoint_path(f"ptq_kd_{wc.bits}"),
    script:
        "../scripts/quantize_student.py"


use rule quantize_student as quantize_pruned with:
    input:
        source="weights/pr_kd_{level}.pt",
        teacher="weights/teacher.pt",
        dataset="results/data/dataset.pt",
    output:
        weights="weights/ptq_pr_kd_{level}_{bits}.pt",
    log:
        f"{LOGS}/quantize_pruned_{{level}}_{{bits}}.log",
    params:
        variant="ptq_pr_kd_{level}_{bits}",
        base="pr_kd_{level}",
        bits="{bits}",
        act_bits=config["quantize"]["act_bits"],
        method=lambda wc: quant_method(wc.bits),
        calibration=config["quantize"]["calibration"],
        qat=config["quantize"]["qat"],
        kd=config["kd"],
        augment=config["augment"],
        seed=config["seed"],
        checkpoint=lambda wc: checkpoint_path(f"ptq_pr_kd_{wc.level}_{wc.bits}"),


rule export_onnx:
    input:
        weights="weights/{variant}.pt",
        dataset="results/data/dataset.pt",
    output:
        onnx="results/onnx/{variant}.onnx",
        info="results/onnx/{variant}.json",
    log:
        f"{LOGS}/export_onnx_{{variant}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        opset=config["export"]["opset"],
        qcdq_bits=config["export"]["qcdq_bits"],
    script:
        "../scripts/export_onnx.py"
