output "url" {
  description = "The load balancer's own HTTPS URL (its certificate names your domain: use domain_url where you have one)."
  value       = "https://${aws_lb.this.dns_name}"
}

output "load_balancer_dns_name" {
  description = "DNS name of the public load balancer (the target of the API's DNS record)."
  value       = aws_lb.this.dns_name
}

output "load_balancer_zone_id" {
  description = "Hosted zone of the load balancer (for a Route 53 alias record)."
  value       = aws_lb.this.zone_id
}

output "security_group_id" {
  description = "The API tasks' security group (admit it where the API must connect)."
  value       = aws_security_group.tasks.id
}

output "cluster_name" {
  description = "ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "service_name" {
  description = "ECS service."
  value       = aws_ecs_service.this.name
}

output "log_group_name" {
  description = "CloudWatch log group of the API."
  value       = aws_cloudwatch_log_group.api.name
}

output "task_role_name" {
  description = "The API tasks' IAM role."
  value       = aws_iam_role.task.name
}
