# Application Auto Scaling for PROVISIONED tables and their GSIs (nothing is created
# on demand). Target tracking keeps consumed/provisioned capacity near
# var.autoscaling_target_utilization: it adds capacity within minutes of a rise and
# removes it slowly (DynamoDB allows a limited number of decreases per day).
#
# Every GSI is scaled on its own, not just the table: a GSI that runs out of write
# capacity throttles writes to its base table, so an unscaled index would cap the
# whole table at the index's capacity.
#
# The scalable targets use Application Auto Scaling's service-linked role, which
# it creates on first use; no role is passed.

locals {
  # One entry per (resource, dimension): "sessions:read", "jobs/by_status:write", …
  scaling = merge(
    {
      for pair in setproduct(keys(local.table_capacity), ["read", "write"]) :
      "${pair[0]}:${pair[1]}" => {
        table       = pair[0]
        resource_id = "table/${aws_dynamodb_table.this[pair[0]].name}"
        dimension   = "dynamodb:table:${pair[1] == "read" ? "Read" : "Write"}CapacityUnits"
        metric      = "DynamoDB${pair[1] == "read" ? "Read" : "Write"}CapacityUtilization"
        min         = pair[1] == "read" ? local.table_capacity[pair[0]].read_min : local.table_capacity[pair[0]].write_min
        max         = pair[1] == "read" ? local.table_capacity[pair[0]].read_max : local.table_capacity[pair[0]].write_max
      }
    },
    {
      for pair in setproduct(keys(local.index_capacity), ["read", "write"]) :
      "${pair[0]}:${pair[1]}" => {
        table       = split("/", pair[0])[0]
        resource_id = "table/${aws_dynamodb_table.this[split("/", pair[0])[0]].name}/index/${split("/", pair[0])[1]}"
        dimension   = "dynamodb:index:${pair[1] == "read" ? "Read" : "Write"}CapacityUnits"
        metric      = "DynamoDB${pair[1] == "read" ? "Read" : "Write"}CapacityUtilization"
        min         = pair[1] == "read" ? local.index_capacity[pair[0]].read_min : local.index_capacity[pair[0]].write_min
        max         = pair[1] == "read" ? local.index_capacity[pair[0]].read_max : local.index_capacity[pair[0]].write_max
      }
    },
  )
}

resource "aws_appautoscaling_target" "dynamodb" {
  for_each = local.provisioned ? local.scaling : {}

  service_namespace  = "dynamodb"
  resource_id        = each.value.resource_id
  scalable_dimension = each.value.dimension
  min_capacity       = each.value.min
  max_capacity       = each.value.max
  tags               = local.tags
}

resource "aws_appautoscaling_policy" "dynamodb" {
  for_each = aws_appautoscaling_target.dynamodb

  name               = "${local.name}-${replace(each.key, "/[/:]/", "-")}-target-tracking"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = each.value.service_namespace
  resource_id        = each.value.resource_id
  scalable_dimension = each.value.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value = var.autoscaling_target_utilization

    predefined_metric_specification {
      predefined_metric_type = local.scaling[each.key].metric
    }

    # Scale out fast (a throttled request is a 503 to a user), in slowly.
    scale_out_cooldown = 60
    scale_in_cooldown  = 300
  }
}
