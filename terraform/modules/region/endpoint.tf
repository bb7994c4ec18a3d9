# The region's endpoint: one internal network load balancer that the other regions reach
# over the interconnect. Its listeners forward to pod IPs (target type "ip"); the AWS Load
# Balancer Controller registers pods through the chart's TargetGroupBindings. Terraform
# owns the load balancer, so the interconnect's DNS names exist before the chart runs.

locals {
  listeners = merge(
    {
      gateway   = { port = var.ports.gateway, target = 50051 }
      redis     = { port = var.ports.redis, target = var.ports.redis }
      etcd      = { port = var.ports.etcd, target = var.ports.etcd }
      etcd-peer = { port = var.ports.etcd_peer, target = var.ports.etcd_peer }
    },
    { for m in var.mirrors : "mirror-${m.home}" => { port = m.port, target = m.port } },
  )
}

resource "aws_s3_bucket" "lb_logs" {
  bucket_prefix = "${local.prefix}-lb-logs-"
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "lb_logs" {
  bucket                  = aws_s3_bucket.lb_logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "lb_logs" {
  bucket = aws_s3_bucket.lb_logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "lb_logs" {
  bucket = aws_s3_bucket.lb_logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "lb_logs" {
  bucket = aws_s3_bucket.lb_logs.id
  rule {
    id     = "expire"
    status = "Enabled"
    filter {}
    expiration {
      days = 365
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_security_group" "endpoint" {
  name        = "${local.prefix}-endpoint"
  description = "The region endpoint: reachable from the region and its peers only"
  vpc_id      = aws_vpc.region.id
  tags        = local.tags

  dynamic "ingress" {
    for_each = local.listeners
    content {
      description = "${ingress.key} from this region and the peer regions"
      from_port   = ingress.value.port
      to_port     = ingress.value.port
      protocol    = "tcp"
      cidr_blocks = concat([var.cidr], var.peer_cidrs)
    }
  }

  egress {
    description = "to the pods behind the listeners"
    from_port   = 0
    to_port     = 65535
    protocol    = "tcp"
    cidr_blocks = [var.cidr]
  }
}

resource "aws_lb" "endpoint" {
  name                             = substr("${local.prefix}-ep", 0, 32)
  internal                         = true
  load_balancer_type               = "network"
  subnets                          = aws_subnet.private[*].id
  security_groups                  = [aws_security_group.endpoint.id]
  enable_deletion_protection       = true
  enable_cross_zone_load_balancing = true
  tags                             = local.tags

  access_logs {
    bucket  = aws_s3_bucket.lb_logs.id
    enabled = true
  }
}

resource "aws_lb_target_group" "endpoint" {
  for_each    = local.listeners
  name        = substr("${local.prefix}-${each.key}", 0, 32)
  port        = each.value.target
  protocol    = "TCP"
  target_type = "ip"
  vpc_id      = aws_vpc.region.id
  tags        = local.tags

  health_check {
    protocol = "TCP"
  }
}

resource "aws_lb_listener" "endpoint" {
  for_each          = local.listeners
  load_balancer_arn = aws_lb.endpoint.arn
  port              = each.value.port
  protocol          = "TCP"
  tags              = local.tags

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.endpoint[each.key].arn
  }
}
