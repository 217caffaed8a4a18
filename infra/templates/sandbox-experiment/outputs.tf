output "run_id" {
  description = "Run id of the experiment, stable across re-applies of the same workspace."
  value       = terraform_data.tracking.output.run_id
}

output "tracking_url" {
  description = "Where the run's metrics and artifacts are tracked."
  value       = terraform_data.tracking.output.tracking_url
}

output "sandbox_id" {
  description = "Unique id of this sandbox instance (changes when the sandbox is replaced)."
  value       = terraform_data.sandbox.id
}

output "container_image" {
  description = "Container image the experiment runs in."
  value       = terraform_data.sandbox.output.image
}

output "resources" {
  description = "What was reserved for the sandbox."
  value = {
    gpu_count       = var.gpu_count
    dataset_size_gb = var.dataset_size_gb
    framework       = var.framework
  }
}

output "tracking_token" {
  description = "API token for the tracking server. Sensitive: Paved masks it in pages and the API."
  value       = sha256("${var.paved_team}/${var.paved_workspace}/${var.experiment_name}/tracking-token")
  sensitive   = true
}
