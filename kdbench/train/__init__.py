"""Fine-tuning the teacher and distilling a student, on the Hugging Face Trainer. Read in this order: config (every
setting with its meaning and unit), student (layer map and initialisation from the teacher), losses, trainer (the
Trainer that adds the teacher; deadlines; data-parallel launches), finetune, distill; speed times one training step.
Imports core, zoo, tasks, results, engines and measure.
"""
