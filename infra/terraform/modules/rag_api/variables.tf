variable "name" {
  description = "Name prefix of every resource (the ECS cluster and service are \"<name>-api\")."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the service."
  type        = string
}

variable "public_subnet_ids" {
  description = "Public subnets of the internet-facing load balancer (two Availability Zones at least)."
  type        = list(string)
}

variable "private_subnet_ids" {
  description = "Private subnets (with a NAT route) of the API's tasks."
  type        = list(string)
}

variable "image" {
  description = "The API image (built from docker/api.Dockerfile), pinned by tag or digest, e.g. <account>.dkr.ecr.<region>.amazonaws.com/twin-api:0.1.0."
  type        = string

  validation {
    condition     = can(regex("^[^\\s]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$", var.image)) && !endswith(var.image, ":latest")
    error_message = "image: a repository with a tag or digest, not :latest (a restarted task would run whatever latest is then)."
  }
}

variable "certificate_arn" {
  description = "ACM certificate of the HTTPS listener (covering the API's domain name)."
  type        = string
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"
}

variable "container_port" {
  description = "Port the API listens on in the container (TWIN_API_PORT)."
  type        = number
  default     = 8000
}

variable "cpu" {
  description = "Fargate CPU units per task (1024 = 1 vCPU)."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Fargate memory per task, in MiB (the embedding model and its ONNX query encoder take about 1 GB)."
  type        = number
  default     = 2048
}

variable "workers" {
  description = "Uvicorn worker processes per task (TWIN_API_WORKERS); about one per vCPU with the tgi backend."
  type        = number
  default     = 2

  validation {
    condition     = var.workers >= 1 && var.workers <= 32
    error_message = "workers: 1 to 32."
  }
}

variable "min_count" {
  description = "Fewest tasks (also the count at creation; autoscaling moves it between min_count and max_count)."
  type        = number
  default     = 2
}

variable "max_count" {
  description = "Most tasks."
  type        = number
  default     = 6
}

variable "cpu_target_percent" {
  description = "Average CPU the autoscaling keeps the tasks at."
  type        = number
  default     = 60
}

variable "tgi_url" {
  description = "TGI's internal base URL (TWIN_LLM_URL)."
  type        = string
}

variable "tgi_security_group_id" {
  description = "Security group of TGI's internal load balancer (the tasks may call it on port 80)."
  type        = string
}

variable "database_security_group_id" {
  description = "Security group of the database (the tasks may connect on 5432)."
  type        = string
}

variable "database_url_secret_arn" {
  description = "Secrets Manager secret holding TWIN_DATABASE_URL."
  type        = string
}

variable "secret_kms_key_arns" {
  description = "KMS keys of the secrets (the execution role may decrypt with them)."
  type        = list(string)
  default     = []
}

variable "extra_secrets" {
  description = "More environment variables from Secrets Manager or SSM Parameter Store: NAME => ARN (e.g. TWIN_LLM_API_KEY, OPIK_API_KEY)."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for arn in values(var.extra_secrets) : can(regex("^arn:aws[a-z-]*:(secretsmanager|ssm):", arn))
    ])
    error_message = "extra_secrets: every value is a Secrets Manager secret ARN or an SSM parameter ARN."
  }
}

variable "environment" {
  description = "More plain environment variables (no secrets here: task definitions are readable). TWIN_* settings, e.g. TWIN_LLM_MAX_NEW_TOKENS."
  type        = map(string)
  default     = {}
}

variable "serve_author" {
  description = "Author id whose twin the API serves (TWIN_API_SERVE_AUTHOR): the author TGI serves."
  type        = string
}

variable "read_only_root_filesystem" {
  description = "Run the image read-only; TWIN_DATA_DIR (/var/lib/twin), /tmp and home_directory are writable task storage."
  type        = bool
  default     = true
}

variable "home_directory" {
  description = "The image user's home folder (docker/api.Dockerfile: /home/twin), writable for library caches."
  type        = string
  default     = "/home/twin"
}

variable "health_check_path" {
  description = "Liveness route of the API, used by the load balancer and the container health check."
  type        = string
  default     = "/health"
}

variable "enable_waf" {
  description = "Put AWS WAF (AWS managed common and known-bad-input rules, a per-address rate limit) in front of the API."
  type        = bool
  default     = true
}

variable "waf_requests_per_5_minutes" {
  description = "WAF: requests one client address may make in 5 minutes before it is blocked."
  type        = number
  default     = 1000
}

variable "enable_execute_command" {
  description = "ECS Exec into the tasks (how `twin apikey create` and the database tunnel in docs/deploy.md work)."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Days the API's and WAF's logs are kept."
  type        = number
  default     = 365
}

variable "log_kms_key_arn" {
  description = "KMS key for the CloudWatch log groups (its policy must allow the CloudWatch Logs service)."
  type        = string
}

variable "alarm_actions" {
  description = "ARNs notified when an alarm fires or clears (an SNS topic)."
  type        = list(string)
  default     = []
}

variable "deletion_protection" {
  description = "Protect the public load balancer from deletion (turn off before `terraform destroy`)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
