output "endpoint_name" {
  description = "Name of the SageMaker endpoint."
  value       = aws_sagemaker_endpoint.this.name
}

output "endpoint_arn" {
  description = "ARN of the SageMaker endpoint, for IAM policies of the callers."
  value       = aws_sagemaker_endpoint.this.arn
}

output "invoke_url" {
  description = "HTTPS URL for InvokeEndpoint (requests must be SigV4-signed for service sagemaker)."
  value       = "https://runtime.sagemaker.${var.region}.amazonaws.com/endpoints/${aws_sagemaker_endpoint.this.name}/invocations"
}

output "invoke_command" {
  description = "Sends a JSON request with the AWS CLI and prints the response."
  value       = "aws sagemaker-runtime invoke-endpoint --region ${var.region} --endpoint-name ${aws_sagemaker_endpoint.this.name} --content-type application/json --body fileb://request.json response.json && cat response.json"
}

output "model_name" {
  description = "SageMaker model currently served."
  value       = aws_sagemaker_model.this.name
}

output "execution_role_arn" {
  description = "Role SageMaker uses to pull the image and read the artifacts; extend it for e.g. KMS-encrypted artifacts."
  value       = aws_iam_role.execution.arn
}
