# Sandbox experiment: a throw-away, tracked experiment slot.
#
# Only Terraform's builtin `terraform_data` resource is used, so this module needs no provider, no cloud account
# and no network: the sandbox is a set of recorded facts (what was asked for, the run id, where results are
# tracked) that the experiment runner picks up from the outputs. Destroying the workspace forgets them.

terraform {
  required_version = ">= 1.5.0"
}

locals {
  labels = {
    "paved:team"      = var.paved_team
    "paved:workspace" = var.paved_workspace
    "paved:template"  = var.paved_template
  }

  # Stable for the same team, workspace and experiment: re-applying keeps the run id.
  run_id = "run-${substr(sha256(join("/", [var.paved_team, var.paved_workspace, var.experiment_name])), 0, 12)}"

  images = {
    "pytorch"      = "pytorch/pytorch:2.4.1-cuda12.1-cudnn9-runtime"
    "tensorflow"   = "tensorflow/tensorflow:2.17.0-gpu"
    "jax"          = "ghcr.io/nvidia/jax:jax-2024-10-01"
    "scikit-learn" = "python:3.11-slim"
    "xgboost"      = "rapidsai/base:24.10-cuda12.5-py3.11"
  }

  tracking_url = format(
    "https://mlflow.paved.internal/#/teams/%s/experiments/%s/runs/%s",
    urlencode(var.paved_team),
    var.experiment_name,
    local.run_id,
  )
}

# The sandbox request itself: changing any of these replaces the sandbox.
resource "terraform_data" "sandbox" {
  input = {
    experiment      = var.experiment_name
    framework       = var.framework
    image           = local.images[var.framework]
    gpu_count       = var.gpu_count
    dataset_size_gb = var.dataset_size_gb
    labels          = local.labels
  }
}

# The tracking record: notes can change without replacing the sandbox.
resource "terraform_data" "tracking" {
  input = {
    run_id       = local.run_id
    sandbox_id   = terraform_data.sandbox.id
    tracking_url = local.tracking_url
    notes        = var.notes
  }

  lifecycle {
    replace_triggered_by = [terraform_data.sandbox]
  }
}
