output "notebook_url" {
  description = "JupyterLab URL. Private notebooks: start connect_command first, then open it locally."
  value = (
    var.public_access
    ? "https://${aws_instance.notebook.public_dns}:8888/lab"
    : "http://localhost:8888/lab"
  )
}

output "instance_id" {
  description = "EC2 instance id of the notebook."
  value       = aws_instance.notebook.id
}

output "connect_command" {
  description = "Forwards JupyterLab to localhost:8888 through SSM Session Manager (no open port needed)."
  value       = "aws ssm start-session --region ${var.region} --target ${aws_instance.notebook.id} --document-name AWS-StartPortForwardingSession --parameters portNumber=8888,localPortNumber=8888"
}

output "token_command" {
  description = "Prints the JupyterLab login token (stored in SSM Parameter Store, never in Terraform state)."
  value       = "aws ssm get-parameter --region ${var.region} --name ${aws_ssm_parameter.token.name} --with-decryption --query Parameter.Value --output text"
}

output "start_command" {
  description = "Starts the instance again after an idle stop."
  value       = "aws ec2 start-instances --region ${var.region} --instance-ids ${aws_instance.notebook.id}"
}
