variable "name" {
  description = "Name prefix (the DB instance identifier is \"<name>-postgres\")."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the database."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets (two Availability Zones at least) for the DB subnet group."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "subnet_ids: RDS needs subnets in two Availability Zones at least."
  }
}

variable "allowed_security_group_ids" {
  description = "Who may connect on 5432: a map of a short name to a security group id (the API's tasks, Dagster's pods, ...)."
  type        = map(string)
  default     = {}
}

variable "engine_version" {
  description = "Postgres major version; pgvector ships with RDS for PostgreSQL 15 and later (CREATE EXTENSION vector)."
  type        = string
  default     = "17"

  validation {
    condition     = can(regex("^(1[5-9]|[2-9][0-9])$", var.engine_version))
    error_message = "engine_version: a major version of 15 or later (pgvector)."
  }
}

variable "instance_class" {
  description = "DB instance class."
  type        = string
  default     = "db.t4g.medium"
}

variable "allocated_storage_gb" {
  description = "Initial storage (gp3)."
  type        = number
  default     = 20
}

variable "max_allocated_storage_gb" {
  description = "Storage autoscaling ceiling."
  type        = number
  default     = 200
}

variable "multi_az" {
  description = "A standby in a second Availability Zone (doubles the instance cost)."
  type        = bool
  default     = true
}

variable "backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 7

  validation {
    condition     = var.backup_retention_days >= 1 && var.backup_retention_days <= 35
    error_message = "backup_retention_days: 1 to 35 (0 would turn backups off)."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the instance (turn off before `terraform destroy`)."
  type        = bool
  default     = true
}

variable "database_name" {
  description = "The platform's database."
  type        = string
  default     = "twin"
}

variable "username" {
  description = "Master user (the platform connects as this user; migrations run CREATE EXTENSION vector)."
  type        = string
  default     = "twin"
}

variable "log_retention_days" {
  description = "Days the Postgres logs are kept in CloudWatch."
  type        = number
  default     = 365
}

variable "log_kms_key_arn" {
  description = "KMS key for the CloudWatch log groups (its policy must allow the CloudWatch Logs service)."
  type        = string
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
