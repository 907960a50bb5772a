"""Training: the train state, optimiser routing by role, the end-to-end loop (`train`), heads on
frozen features (`frozen`), checkpointing and warm starts. Imports data, models and evaluation;
never a study."""
