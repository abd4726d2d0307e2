"""Two distillation overheads, measured in one run on this machine:

(a) time of one KD training step divided by (a plain fine-tuning step of the same student + a teacher inference
    pass on the same batch); goal <= 1.10;
(b) padded tokens / real tokens over one epoch of SST-2 with kdbench's batching; goal <= 1.2.

  python3 scripts/distill_overheads.py TEACHER_DIR DATA_DIR [--student 6L] [--reps 30]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("teacher", help="a teacher model folder (e.g. all-MiniLM-L6-v2)")
    ap.add_argument("data", type=Path, help="GLUE folder (e.g. ../shared/glue)")
    ap.add_argument("--student", default="6L")
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()

    import torch
    from transformers import DataCollatorWithPadding, Trainer

    from kdbench.tasks.loading import load_task, tokenize
    from kdbench.tasks.task import get_task
    from kdbench.train.config import DistillConfig, TrainConfig
    from kdbench.train.student import build_student
    from kdbench.train.trainer import distillation_module, kd_trainer_class, load_pretrained, training_args
    from kdbench.zoo.students import load_zoo, resolve
    from kdbench.zoo.teacher import teacher_shape

    task = get_task("sst2")
    train = TrainConfig(epochs=1, seed=0)
    data = load_task(task, args.data)
    teacher, tok = load_pretrained(args.teacher, task.num_labels, "teacher")
    shape = resolve(load_zoo()[args.student], teacher_shape(teacher.config, args.teacher))
    tokenized = tokenize(data, task, tok, train.max_seq_len)
    collator = DataCollatorWithPadding(tok)
    cfg = DistillConfig(task="sst2", student=args.student, teacher=args.teacher, train=train)
    student, lmap, _ = build_student(teacher, shape, "teacher")
    module = distillation_module()(student, shape.hidden, teacher.config.hidden_size)
    out = Path("/tmp/kdbench-overheads")
    kd = kd_trainer_class()(
        model=module,
        args=training_args(train, out / "kd", task, ["validation"]),
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        data_collator=collator,
        teacher=teacher,
        lmap=lmap,
        cfg=cfg,
        regression=False,
    )

    # (b) padding over one epoch, with the exact dataloader the KD trainer trains on
    padded = real = 0
    for batch in kd.get_train_dataloader():
        padded += batch["attention_mask"].numel()
        real += int(batch["attention_mask"].sum())
    print(
        f"(b) SST-2, one epoch of {len(tokenized['train'])} rows, batch {train.batch_size}: padded/real tokens = "
        f"{padded}/{real} = {padded / real:.3f}"
    )

    # (a) one KD step versus a plain step of the same student plus a teacher forward, on the same batches
    plain_student, _, _ = build_student(teacher, shape, "teacher")
    plain = Trainer(
        model=plain_student,
        args=training_args(train, out / "plain", task, ["validation"]),
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        data_collator=collator,
    )
    for t in (kd, plain):
        t.create_optimizer_and_scheduler(num_training_steps=10_000)
        t.current_gradient_accumulation_steps = 1  # set by Trainer.train(); training_step reads it
    rows = tokenized["train"].remove_columns(["length"])
    batches = [collator([rows[i] for i in range(k * 12, k * 12 + 12)]) for k in range(8)]

    def step(trainer, inputs):
        trainer.model.train()
        trainer.training_step(trainer.model, dict(inputs))
        trainer.optimizer.step()
        trainer.optimizer.zero_grad()

    def infer(inputs):
        with torch.no_grad():
            teacher.eval()(**{k: v for k, v in inputs.items() if k != "labels"})

    times = {"kd": [], "plain": [], "teacher": []}
    for r in range(args.reps + 3):  # alternate the three so machine drift hits them alike; 3 warm-up rounds
        inputs = batches[r % len(batches)]
        for name, fn in (
            ("kd", lambda x=inputs: step(kd, x)),
            ("plain", lambda x=inputs: step(plain, x)),
            ("teacher", lambda x=inputs: infer(x)),
        ):
            t0 = time.perf_counter()
            fn()
            if r >= 3:
                times[name].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(
        f"(a) student {args.student} ({shape.layers} layers) of {Path(args.teacher).name}, batch 12, "
        f"{args.reps} alternating reps: KD step {med['kd'] * 1e3:.1f} ms, plain step {med['plain'] * 1e3:.1f} ms, "
        f"teacher forward {med['teacher'] * 1e3:.1f} ms; ratio {med['kd'] / (med['plain'] + med['teacher']):.3f}"
    )


if __name__ == "__main__":
    main()
