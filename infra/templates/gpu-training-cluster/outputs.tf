output "cluster_id" {
  description = "Name shared by every resource of the cluster (also the paved:cluster tag)."
  value       = local.name
}

output "node_private_ips" {
  description = "Private IP of each node, by rank (node 0 first)."
  value       = aws_instance.node[*].private_ip
}

output "node_instance_ids" {
  description = "EC2 instance id of each node, by rank."
  value       = aws_instance.node[*].id
}

output "head_node_ip" {
  description = "Private IP of node 0: the torchrun rendezvous endpoint (--rdzv-endpoint=<ip>:29500)."
  value       = aws_instance.node[0].private_ip
}

output "ssh_command" {
  description = "How to open a shell on node 0: SSH when a key pair was given, otherwise SSM Session Manager."
  value = (
    local.ssh_key_name != null
    ? "ssh -i ~/.ssh/${var.ssh_key_name}.pem ubuntu@${aws_instance.node[0].private_ip}"
    : "aws ssm start-session --region ${var.region} --target ${aws_instance.node[0].id}"
  )
}

output "security_group_id" {
  description = "Security group of the nodes; add rules to it to reach other services."
  value       = aws_security_group.cluster.id
}
