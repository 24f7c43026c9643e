# Compression of the KD student: structured pruning (torch-pruning) with distillation fine-tuning,
# quantization (brevitas PTQ, optional QAT) of the KD student and of pruned levels, fp16 conversion (BN folded,
# float16 weights; quantize.fp16), and ONNX export of every variant. Order: prune -> fine-tune -> quantize.


rule prune_student:
    input:
        student=run_path("weights/kd.pt"),
        teacher=run_path("weights/teacher.pt"),
        teacher_logits=run_path("results/training/teacher_logits.pt"),
        dataset=DATASET,
    output:
        weights=run_path("weights/pr_kd_{level}.pt"),
    log:
        f"{RUN_LOGS}/prune_student_{{level}}.log",
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
        seed=RUN_SEED,
        precision=config["train"]["precision"],
        device=config["train"]["device"],
        checkpoint=checkpoint_path("pr_kd_{level}"),
    script:
        "../scripts/prune_student.py"


rule quantize_student:
    input:
        source=run_path("weights/kd.pt"),
        teacher=run_path("weights/teacher.pt"),
        teacher_logits=run_path("results/training/teacher_logits.pt"),
        dataset=DATASET,
    output:
        weights=run_path("weights/ptq_kd_{bits}.pt"),
    log:
        f"{RUN_LOGS}/quantize_student_{{bits}}.log",
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
        seed=RUN_SEED,
        precision=config["train"]["precision"],
        device=config["train"]["device"],
        checkpoint=checkpoint_path("ptq_kd_{bits}"),
    script:
        "../scripts/quantize_student.py"


use rule quantize_student as quantize_pruned with:
    input:
        source=run_path("weights/pr_kd_{level}.pt"),
        teacher=run_path("weights/teacher.pt"),
        teacher_logits=run_path("results/training/teacher_logits.pt"),
        dataset=DATASET,
    output:
        weights=run_path("weights/ptq_pr_kd_{level}_{bits}.pt"),
    log:
        f"{RUN_LOGS}/quantize_pruned_{{level}}_{{bits}}.log",
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
        seed=RUN_SEED,
        precision=config["train"]["precision"],
        device=config["train"]["device"],
        checkpoint=checkpoint_path("ptq_pr_kd_{level}_{bits}"),


rule convert_fp16:
    input:
        source=run_path("weights/{base}.pt"),
    output:
        weights=run_path("weights/fp16_{base}.pt"),
    log:
        f"{RUN_LOGS}/convert_fp16_{{base}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        variant="fp16_{base}",
        base="{base}",
    script:
        "../scripts/convert_fp16.py"


rule export_onnx:
    input:
        weights=run_path("weights/{variant}.pt"),
        dataset=DATASET,
    output:
        onnx=run_path("results/onnx/{variant}.onnx"),
        info=run_path("results/onnx/{variant}.json"),
    log:
        f"{RUN_LOGS}/export_onnx_{{variant}}.log",
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
