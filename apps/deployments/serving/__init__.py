"""Code that runs inside the serving venv (`.venv-serving`, MLServer), never in the portal: it imports neither
Django nor `apps`. `runtime.py` is the MLServer runtime every local variant uses; `train_demo_model.py` writes
the demo scikit-learn model."""
