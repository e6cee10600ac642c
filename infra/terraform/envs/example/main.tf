# The whole serving path for one author's twin:
#   internet --HTTPS--> public ALB (+WAF) --> RAG API on Fargate --HTTP--> internal ALB --> TGI on GPU hosts
#                                                  |                                          ^
#                                                  +--> RDS Postgres (pgvector)               | model sync
#                                                                                   S3 artifacts bucket
# `twin models release` uploads a twin under s3://<bucket>/<release_prefix>/<author>/ and refreshes the TGI hosts.

locals {
  api_image = var.api_image != "" ? var.api_image : "${aws_ecr_repository.api.repository_url}:${var.api_image_tag}"
}

module "artifacts" {
  source = "../../modules/artifacts"

  name           = var.name
  release_prefix = var.release_prefix
}

module "database" {
  source = "../../modules/database"

  name                = var.name
  vpc_id              = aws_vpc.this.id
  subnet_ids          = aws_subnet.private[*].id
  instance_class      = var.db_instance_class
  multi_az            = var.db_multi_az
  deletion_protection = var.deletion_protection
  log_kms_key_arn     = aws_kms_key.observability.arn
  log_retention_days  = var.log_retention_days

  allowed_security_group_ids = merge(
    { api = module.rag_api.security_group_id },
    var.database_client_security_group_ids,
  )
}

module "tgi_endpoint" {
  source = "../../modules/tgi_endpoint"

  name               = var.name
  vpc_id             = aws_vpc.this.id
  private_subnet_ids = aws_subnet.private[*].id

  client_security_group_ids = { api = module.rag_api.security_group_id }

  instance_type    = var.tgi_instance_type
  desired_capacity = var.tgi_desired_capacity
  min_size         = var.tgi_min_size
  max_size         = var.tgi_max_size

  bucket_name        = module.artifacts.bucket_name
  bucket_arn         = module.artifacts.bucket_arn
  bucket_kms_key_arn = module.artifacts.kms_key_arn
  release_prefix     = module.artifacts.release_prefix
  author_slug        = var.author_slug
  model_uri          = var.model_uri

  tgi_image_tag    = var.tgi_image_tag
  quantize         = var.quantize
  max_input_tokens = var.max_input_tokens
  max_total_tokens = var.max_total_tokens

  log_kms_key_arn     = aws_kms_key.observability.arn
  log_retention_days  = var.log_retention_days
  alarm_actions       = [aws_sns_topic.alarms.arn]
  deletion_protection = var.deletion_protection
}

module "rag_api" {
  source = "../../modules/rag_api"

  name               = var.name
  vpc_id             = aws_vpc.this.id
  public_subnet_ids  = aws_subnet.public[*].id
  private_subnet_ids = aws_subnet.private[*].id

  image           = local.api_image
  certificate_arn = aws_acm_certificate_validation.api.certificate_arn
  cpu             = var.api_cpu
  memory          = var.api_memory
  workers         = var.api_workers
  min_count       = var.api_min_count
  max_count       = var.api_max_count

  serve_author               = var.author_slug
  tgi_url                    = module.tgi_endpoint.url
  tgi_security_group_id      = module.tgi_endpoint.load_balancer_security_group_id
  database_url_secret_arn    = module.database.database_url_secret_arn
  database_security_group_id = module.database.security_group_id
  secret_kms_key_arns        = [module.database.kms_key_arn]
  extra_secrets              = var.api_secrets
  environment                = var.api_environment

  log_kms_key_arn     = aws_kms_key.observability.arn
  log_retention_days  = var.log_retention_days
  alarm_actions       = [aws_sns_topic.alarms.arn]
  deletion_protection = var.deletion_protection
}

# ---------------------------------------------------------------- the API image's registry

resource "aws_ecr_repository" "api" {
  name                 = "${var.name}-api"
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
  }
}

resource "aws_ecr_lifecycle_policy" "api" {
  repository = aws_ecr_repository.api.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the 30 newest images"
      selection    = { tagStatus = "any", countType = "imageCountMoreThan", countNumber = 30 }
      action       = { type = "expire" }
    }]
  })
}

# ---------------------------------------------------------------- the API's name and certificate

resource "aws_acm_certificate" "api" {
  domain_name       = var.api_domain_name
  validation_method = "DNS"

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "api_validation" {
  for_each = {
    for option in aws_acm_certificate.api.domain_validation_options : option.domain_name => {
      name   = option.resource_record_name
      type   = option.resource_record_type
      record = option.resource_record_value
    }
  }

  zone_id         = var.route53_zone_id
  name            = each.value.name
  type            = each.value.type
  records         = [each.value.record]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "api" {
  certificate_arn         = aws_acm_certificate.api.arn
  validation_record_fqdns = [for record in aws_route53_record.api_validation : record.fqdn]
}

resource "aws_route53_record" "api" {
  zone_id = var.route53_zone_id
  name    = var.api_domain_name
  type    = "A"

  alias {
    name                   = module.rag_api.load_balancer_dns_name
    zone_id                = module.rag_api.load_balancer_zone_id
    evaluate_target_health = true
  }
}
