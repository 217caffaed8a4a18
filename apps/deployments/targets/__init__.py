"""Where a model version serves: one `DeploymentTarget` interface (targets/base.py) and its implementations, the
local one (MLServer processes behind HAProxy, targets/local.py) and SageMaker (targets/sagemaker.py).
`apps.deployments.services.backends` builds the target of an endpoint."""
