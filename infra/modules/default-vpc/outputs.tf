output "subnet_id" {
  description = "The subnet: the one given, or a default subnet of the default VPC."
  value       = data.aws_subnet.selected.id
}

output "vpc_id" {
  description = "VPC of the subnet, for security groups."
  value       = data.aws_subnet.selected.vpc_id
}
