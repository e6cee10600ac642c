# The twin's text-generation endpoint: an autoscaling group of GPU hosts (AWS Deep Learning AMI) that each sync
# the author's released model from S3 and serve it with Hugging Face TGI, behind an internal load balancer that
# only the RAG API may reach. `twin models release` writes the release pointer and starts an instance refresh.

data "aws_region" "current" {}
data "aws_partition" "current" {}

data "aws_ami" "dlami" {
  count = var.ami_id == null ? 1 : 0

  most_recent = true
  owners      = ["amazon"]

  filter {
    name   = "name"
    values = [var.ami_name_pattern]
  }

  filter {
    name   = "architecture"
    values = ["x86_64"]
  }

  filter {
    name   = "state"
    values = ["available"]
  }
}

data "aws_ami" "pinned" {
  count = var.ami_id == null ? 0 : 1

  filter {
    name   = "image-id"
    values = [var.ami_id]
  }
}

data "aws_ec2_instance_type" "this" {
  instance_type = var.instance_type
}

locals {
  asg_name      = "${var.name}-tgi"
  ami           = var.ami_id == null ? data.aws_ami.dlami[0] : data.aws_ami.pinned[0]
  gpu_count     = sum(concat([0], [for gpu in data.aws_ec2_instance_type.this.gpus : gpu.count]))
  num_shard     = coalesce(var.num_shard, local.gpu_count)
  release_keys  = "${var.bucket_arn}/${var.release_prefix}/${var.author_slug}/*"
  release_list  = "${var.release_prefix}/${var.author_slug}/*"
  tgi_image     = "ghcr.io/huggingface/text-generation-inference:${var.tgi_image_tag}"
  pinned_prefix = "s3://${var.bucket_name}/${var.release_prefix}/${var.author_slug}/"

  user_data = templatefile("${path.module}/templates/user_data.sh.tftpl", {
    region           = data.aws_region.current.region
    bucket           = var.bucket_name
    release_prefix   = var.release_prefix
    author           = var.author_slug
    model_uri        = var.model_uri
    tgi_image        = local.tgi_image
    num_shard        = local.num_shard
    max_input_tokens = var.max_input_tokens
    max_total_tokens = var.max_total_tokens
    quantize         = var.quantize
    log_group        = aws_cloudwatch_log_group.tgi.name
  })
}

# ---------------------------------------------------------------- logs

resource "aws_cloudwatch_log_group" "tgi" {
  name              = "/twin/${var.name}/tgi"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

# ---------------------------------------------------------------- IAM: read the release prefix, write logs

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "host" {
  name_prefix        = "${var.name}-tgi-host-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "host" {
  statement {
    sid       = "ReadReleasedTwin"
    actions   = ["s3:GetObject"]
    resources = [local.release_keys]
  }

  statement {
    sid       = "ListReleasedTwin"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [local.release_list]
    }
  }

  statement {
    sid       = "DecryptThroughS3"
    actions   = ["kms:Decrypt"]
    resources = [var.bucket_kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${data.aws_region.current.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "WriteTgiLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.tgi.arn}:*"]
  }
}

resource "aws_iam_role_policy" "host" {
  name   = "read-release-write-logs"
  role   = aws_iam_role.host.id
  policy = data.aws_iam_policy_document.host.json
}

resource "aws_iam_role_policy_attachment" "ssm" {
  count = var.enable_ssm ? 1 : 0

  role       = aws_iam_role.host.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_instance_profile" "host" {
  name_prefix = "${var.name}-tgi-host-"
  role        = aws_iam_role.host.name
  tags        = var.tags
}

# What releasing a twin needs (TWIN_RELEASE_S3_BUCKET, TWIN_RELEASE_ASG_NAME): attach it to whoever runs
# `twin models release` or the model_release asset.
data "aws_iam_policy_document" "release" {
  statement {
    sid       = "WriteReleases"
    actions   = ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"]
    resources = ["${var.bucket_arn}/${var.release_prefix}/*"]
  }

  # A failed release puts the previous pointer back, or deletes the pointer when there was none.
  statement {
    sid       = "RestorePointer"
    actions   = ["s3:DeleteObject"]
    resources = ["${var.bucket_arn}/${var.release_prefix}/*/current.json"]
  }

  # Listing under the release prefix only. "IfExists": the release first checks the bucket with HeadBucket, which
  # S3 authorizes as s3:ListBucket without any prefix.
  statement {
    sid       = "ListReleases"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLikeIfExists"
      variable = "s3:prefix"
      values   = ["${var.release_prefix}/*"]
    }
  }

  statement {
    sid       = "EncryptThroughS3"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.bucket_kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${data.aws_region.current.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "RefreshTgiHosts"
    actions   = ["autoscaling:StartInstanceRefresh", "autoscaling:CancelInstanceRefresh"]
    resources = [aws_autoscaling_group.this.arn]
  }

  statement {
    sid       = "WatchRefresh"
    actions   = ["autoscaling:DescribeInstanceRefreshes", "autoscaling:DescribeAutoScalingGroups"]
    resources = ["*"] # Describe* calls support no resource-level permissions
  }
}

resource "aws_iam_policy" "release" {
  name_prefix = "${var.name}-release-twin-"
  description = "Upload released twins under s3://${var.bucket_name}/${var.release_prefix}/ and refresh ${local.asg_name}"
  policy      = data.aws_iam_policy_document.release.json
  tags        = var.tags
}

# ---------------------------------------------------------------- network: only the API reaches TGI

resource "aws_security_group" "lb" {
  name        = "${var.name}-tgi-lb"
  description = "Internal TGI load balancer: HTTP from the RAG API only"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-tgi-lb" })
}

resource "aws_vpc_security_group_ingress_rule" "lb_from_clients" {
  for_each = var.client_security_group_ids

  security_group_id            = aws_security_group.lb.id
  description                  = "TGI over HTTP from ${each.key}"
  ip_protocol                  = "tcp"
  from_port                    = 80
  to_port                      = 80
  referenced_security_group_id = each.value
}

resource "aws_vpc_security_group_egress_rule" "lb_to_hosts" {
  security_group_id            = aws_security_group.lb.id
  description                  = "Forward to the TGI hosts"
  ip_protocol                  = "tcp"
  from_port                    = 80
  to_port                      = 80
  referenced_security_group_id = aws_security_group.host.id
}

resource "aws_security_group" "host" {
  name        = "${var.name}-tgi-host"
  description = "TGI hosts: HTTP from their load balancer only; HTTPS out (ghcr.io, S3, CloudWatch)"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-tgi-host" })
}

resource "aws_vpc_security_group_ingress_rule" "host_from_lb" {
  security_group_id            = aws_security_group.host.id
  description                  = "TGI from the internal load balancer (traffic and /health checks)"
  ip_protocol                  = "tcp"
  from_port                    = 80
  to_port                      = 80
  referenced_security_group_id = aws_security_group.lb.id
}

resource "aws_vpc_security_group_egress_rule" "host_https" {
  security_group_id = aws_security_group.host.id
  description       = "HTTPS out: the TGI image, the model in S3, logs, SSM"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# ---------------------------------------------------------------- hosts

resource "aws_launch_template" "this" {
  name_prefix            = "${var.name}-tgi-"
  description            = "TGI ${var.tgi_image_tag} on ${local.ami.name}"
  image_id               = local.ami.id
  instance_type          = var.instance_type
  user_data              = base64encode(local.user_data)
  update_default_version = true
  ebs_optimized          = true

  iam_instance_profile {
    arn = aws_iam_instance_profile.host.arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = local.ami.root_device_name

    ebs {
      volume_size           = var.root_volume_size_gb
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = var.ebs_kms_key_arn
      delete_on_termination = true
    }
  }

  network_interfaces {
    associate_public_ip_address = false
    delete_on_termination       = true
    security_groups             = [aws_security_group.host.id]
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = local.asg_name })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = local.asg_name })
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = local.gpu_count > 0
      error_message = "instance_type ${var.instance_type} has no GPU."
    }

    precondition {
      condition     = local.num_shard >= 1 && local.num_shard <= local.gpu_count
      error_message = "num_shard must be between 1 and the GPU count of ${var.instance_type} (${local.gpu_count})."
    }

    precondition {
      condition     = var.model_uri == "" || startswith(var.model_uri, local.pinned_prefix)
      error_message = "model_uri must be a version folder under ${local.pinned_prefix} (the hosts may read nothing else)."
    }
  }
}

resource "aws_autoscaling_group" "this" {
  name                      = local.asg_name
  min_size                  = var.min_size
  max_size                  = var.max_size
  desired_capacity          = var.desired_capacity
  vpc_zone_identifier       = var.private_subnet_ids
  target_group_arns         = [aws_lb_target_group.this.arn]
  health_check_type         = "ELB"
  health_check_grace_period = var.health_check_grace_seconds
  wait_for_capacity_timeout = "0" # a GPU host takes minutes to serve: do not hold `terraform apply` for it
  enabled_metrics           = ["GroupDesiredCapacity", "GroupInServiceInstances", "GroupPendingInstances", "GroupTerminatingInstances"]

  launch_template {
    id      = aws_launch_template.this.id
    version = aws_launch_template.this.latest_version
  }

  # A changed launch template (AMI, TGI tag, token limits, ...) rolls the hosts; so does `twin models release`.
  instance_refresh {
    strategy = "Rolling"

    preferences {
      min_healthy_percentage = var.refresh_min_healthy_percentage
      max_healthy_percentage = 200
      instance_warmup        = 300
    }
  }

  dynamic "tag" {
    for_each = merge(var.tags, { Name = local.asg_name })

    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }

  lifecycle {
    precondition {
      condition     = var.min_size <= var.desired_capacity && var.desired_capacity <= var.max_size
      error_message = "need min_size <= desired_capacity <= max_size."
    }
  }
}

# ---------------------------------------------------------------- internal load balancer

resource "aws_lb" "this" {
  name                       = substr("${var.name}-tgi", 0, 32)
  internal                   = true
  load_balancer_type         = "application"
  subnets                    = var.private_subnet_ids
  security_groups            = [aws_security_group.lb.id]
  idle_timeout               = 300 # long generations and streamed answers
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
  tags                       = var.tags
}

resource "aws_lb_target_group" "this" {
  name_prefix          = "tgi-"
  port                 = 80
  protocol             = "HTTP"
  vpc_id               = var.vpc_id
  target_type          = "instance"
  deregistration_delay = 60

  health_check {
    path                = "/health"
    port                = "traffic-port"
    protocol            = "HTTP"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }

  tags = var.tags
}

# ---------------------------------------------------------------- alarms

resource "aws_cloudwatch_metric_alarm" "unhealthy_hosts" {
  alarm_name          = "${var.name}-tgi-unhealthy-hosts"
  alarm_description   = "A TGI host fails GET /health (see /twin/${var.name}/tgi and the host's /var/log/twin-tgi-bootstrap.log)"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  dimensions = {
    LoadBalancer = aws_lb.this.arn_suffix
    TargetGroup  = aws_lb_target_group.this.arn_suffix
  }

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "no_healthy_host" {
  count = var.desired_capacity > 0 ? 1 : 0

  alarm_name          = "${var.name}-tgi-no-healthy-host"
  alarm_description   = "No TGI host answers: the API cannot generate (retrieval still works)"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HealthyHostCount"
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 5
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  dimensions = {
    LoadBalancer = aws_lb.this.arn_suffix
    TargetGroup  = aws_lb_target_group.this.arn_suffix
  }

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "errors_5xx" {
  alarm_name          = "${var.name}-tgi-5xx"
  alarm_description   = "TGI answers with server errors"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HTTPCode_Target_5XX_Count"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = var.alarm_5xx_per_5_minutes
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  dimensions = {
    LoadBalancer = aws_lb.this.arn_suffix
    TargetGroup  = aws_lb_target_group.this.arn_suffix
  }

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "latency_p90" {
  alarm_name          = "${var.name}-tgi-latency-p90"
  alarm_description   = "TGI's p90 response time is above ${var.alarm_p90_latency_seconds}s: add hosts or a larger instance type"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  extended_statistic  = "p90"
  period              = 300
  evaluation_periods  = 2
  threshold           = var.alarm_p90_latency_seconds
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  dimensions = {
    LoadBalancer = aws_lb.this.arn_suffix
    TargetGroup  = aws_lb_target_group.this.arn_suffix
  }

  tags = var.tags
}
