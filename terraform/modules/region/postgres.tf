# The region's record store (tables tasks and attempts), Multi-AZ: a synchronous standby
# in the second zone, so losing a zone loses no recorded attempt. Managed PostgreSQL is fine here:
# homeport needs nothing from it that RDS forbids. The master password lives in Secrets
# Manager (manage_master_user_password); the chart reads it from a Kubernetes Secret.

resource "aws_db_subnet_group" "region" {
  name       = local.prefix
  subnet_ids = aws_subnet.private[*].id
  tags       = local.tags
}

resource "aws_security_group" "postgres" {
  name        = "${local.prefix}-postgres"
  description = "PostgreSQL: reachable from this region's network only"
  vpc_id      = aws_vpc.region.id
  tags        = local.tags

  ingress {
    description = "PostgreSQL from the region's own nodes"
    from_port   = 5432
    to_port     = 5432
    protocol    = "tcp"
    cidr_blocks = [var.cidr]
  }
}

resource "aws_db_parameter_group" "region" {
  name   = "${local.prefix}-pg16"
  family = "postgres16"
  tags   = local.tags

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
  parameter {
    name         = "rds.force_ssl"
    value        = "1"
    apply_method = "pending-reboot"
  }
}

resource "aws_db_instance" "region" {
  identifier                          = local.prefix
  engine                              = "postgres"
  engine_version                      = "16"
  instance_class                      = var.postgres_size
  allocated_storage                   = var.postgres_storage_gb
  storage_encrypted                   = true
  kms_key_id                          = aws_kms_key.region.arn
  db_name                             = "homeport"
  username                            = "homeport"
  manage_master_user_password         = true
  multi_az                            = true
  db_subnet_group_name                = aws_db_subnet_group.region.name
  vpc_security_group_ids              = [aws_security_group.postgres.id]
  parameter_group_name                = aws_db_parameter_group.region.name
  publicly_accessible                 = false
  iam_database_authentication_enabled = true
  deletion_protection                 = true
  backup_retention_period             = 14
  copy_tags_to_snapshot               = true
  auto_minor_version_upgrade          = true
  performance_insights_enabled        = true
  performance_insights_kms_key_id     = aws_kms_key.region.arn
  monitoring_interval                 = 60
  monitoring_role_arn                 = aws_iam_role.rds_monitoring.arn
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${local.prefix}-final"
  tags                                = local.tags
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${local.prefix}-rds-monitoring"
  tags               = local.tags
  assume_role_policy = local.assume_role["monitoring.rds"]
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}
