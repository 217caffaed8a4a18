"""Where a model version serves: one `DeploymentTarget` interface (targets/base.py) and its implementations, the
local one (MLServer processes behind HAProxy) and SageMaker. `TARGETS` maps an endpoint's target kind to its class."""
