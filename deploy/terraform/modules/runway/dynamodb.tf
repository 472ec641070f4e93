# The DynamoDB tables: exactly `runway_store_dynamodb::schema()` (docs/dynamodb.md).
#
# `local.tables` below is the only place the layout is written down in Terraform.
# `crates/runway-store-dynamodb/tests/terraform.rs` parses this file and compares
# every table, key, attribute type, GSI (name, keys, projection) and TTL attribute
# with the code's schema, in both directions, so a table the code reads cannot be
# missing here and a table nobody reads cannot linger. Change both together.
#
# Every key is a string: ids are ULIDs, so an index sorted by id is sorted by
# creation time. Every listing GSI is KEYS_ONLY: listings read ids from the index,
# then the items with a strongly consistent BatchGetItem, so a lagging index can
# cost a read but never show a stale record. Two jobs indexes copy one attribute
# each: claimable copies `labels`, so an agent polling for work can skip jobs it
# cannot run without fetching whole job items, and by_lease copies `lease_agent`,
# so the jobs a deleted agent held can still be found (see docs/dynamodb.md).

locals {
  tables = {
    users = {
      hash_key      = "user_id"
      range_key     = null
      attributes    = { user_id = "S" }
      indexes       = {}
      ttl_attribute = null
    }

    # Usernames, token hashes and issuer identities: `username#…`,
    # `agent_token#…`, `registration_token#…` and `oidc#<issuer>#<subject>` items
    # pointing at their record. Unique by a condition,
    # resolved by a consistent GetItem (a GSI can do neither).
    lookups = {
      hash_key      = "lookup_key"
      range_key     = null
      attributes    = { lookup_key = "S" }
      indexes       = {}
      ttl_attribute = null
    }

    # One item per signed-in device. Validating a token is one consistent GetItem
    # by session_id; expiry is checked in code on every read, because TTL deletion
    # is lazy (typically within 48 hours) and only collects the garbage. No GSI: a
    # user's session ids are kept on the user item, which lists and revokes them
    # exactly (an index would lag).
    sessions = {
      hash_key      = "session_id"
      range_key     = null
      attributes    = { session_id = "S" }
      indexes       = {}
      ttl_attribute = "ttl"
    }

    registration_tokens = {
      hash_key      = "token_id"
      range_key     = null
      attributes    = { token_id = "S" }
      indexes       = {}
      ttl_attribute = null
    }

    agents = {
      hash_key   = "agent_id"
      range_key  = null
      attributes = { agent_id = "S", region = "S", list_pk = "S" }
      indexes = {
        # Sparse: agents without a region are not in it.
        by_region  = { hash_key = "region", range_key = "agent_id", projection_type = "KEYS_ONLY" }
        by_created = { hash_key = "list_pk", range_key = "agent_id", projection_type = "KEYS_ONLY" }
      }
      ttl_attribute = null
    }

    jobs = {
      hash_key  = "job_id"
      range_key = null
      attributes = {
        job_id        = "S"
        list_pk       = "S"
        status        = "S"
        claim_queue   = "S"
        claim_rank    = "S"
        lease_pk      = "S"
        lease_expires = "S"
      }
      indexes = {
        by_created = { hash_key = "list_pk", range_key = "job_id", projection_type = "KEYS_ONLY" }
        # Also the queue TTL: status = "queued" in ascending job_id is oldest first.
        by_status = { hash_key = "status", range_key = "job_id", projection_type = "KEYS_ONLY" }
        # Sparse, queued jobs only: claim_rank is the priority inverted and
        # zero-padded, then "#<job_id>", so ascending is highest priority, then oldest.
        claimable = {
          hash_key           = "claim_queue"
          range_key          = "claim_rank"
          projection_type    = "INCLUDE"
          non_key_attributes = ["labels"]
        }
        # Sparse, the reaper's: lease_pk = "lease" while an agent holds the job,
        # lease_expires = when the attempt is due (the earlier of its lease's end
        # and its deadline) as 19-digit nanoseconds + "#<job_id>"; lease_pk =
        # "queue" while it is queued, lease_expires = when it was queued. Expired
        # leases, passed deadlines and the queue TTL are each one key condition.
        by_lease = {
          hash_key           = "lease_pk"
          range_key          = "lease_expires"
          projection_type    = "INCLUDE"
          non_key_attributes = ["lease_agent"]
        }
      }
      ttl_attribute = null
    }

    # The append-only audit log: one item per mutation, newest first through
    # by_created, or by subject or actor (the audit listing's filters) through the
    # sparse by_subject and by_actor. The function may only put and read here (iam.tf), never update
    # or delete.
    audit = {
      hash_key   = "audit_id"
      range_key  = null
      attributes = { audit_id = "S", list_pk = "S", subject = "S", actor_id = "S" }
      indexes = {
        by_created = { hash_key = "list_pk", range_key = "audit_id", projection_type = "KEYS_ONLY" }
        by_subject = { hash_key = "subject", range_key = "audit_id", projection_type = "KEYS_ONLY" }
        by_actor   = { hash_key = "actor_id", range_key = "audit_id", projection_type = "KEYS_ONLY" }
      }
      ttl_attribute = null
    }

    # OpenID Connect sign-ins between the redirect to the issuer and its callback
    # (ten minutes), keyed by the SHA-256 of their state. The callback takes one
    # with a DeleteItem conditional on it existing, so a state works once; expiry
    # is checked in code, and TTL only collects the logins nobody called back.
    oidc_logins = {
      hash_key      = "state_hash"
      range_key     = null
      attributes    = { state_hash = "S" }
      indexes       = {}
      ttl_attribute = "ttl"
    }

    # Abuse-limit counters (sign-in failures per account and per address, agent
    # registrations, token creations), keyed by a scope and the SHA-256 of what
    # they limit. Counted with an atomic UpdateItem ADD; TTL deletes a counter
    # after its window, and expiry is checked in code.
    abuse_counters = {
      hash_key      = "limit_key"
      range_key     = null
      attributes    = { limit_key = "S" }
      indexes       = {}
      ttl_attribute = "ttl"
    }
  }

  # Auto-scaling bounds per table and per GSI ("table/index"); the minimum is also
  # the capacity Terraform sets when it creates them.
  table_capacity = {
    for table, spec in local.tables : table => try(var.capacity_overrides[table], var.default_capacity)
  }
  index_capacity = merge([
    for table, spec in local.tables : {
      for index, _ in spec.indexes :
      "${table}/${index}" => try(var.capacity_overrides["${table}/${index}"], var.default_capacity)
    }
  ]...)
}

resource "aws_dynamodb_table" "this" {
  for_each = local.tables

  name         = "${local.table_prefix}${each.key}"
  billing_mode = var.billing_mode
  hash_key     = each.value.hash_key
  range_key    = each.value.range_key

  # Capacity is only meaningful when provisioned; on demand it must be unset.
  read_capacity  = local.provisioned ? local.table_capacity[each.key].read_min : null
  write_capacity = local.provisioned ? local.table_capacity[each.key].write_min : null

  dynamic "attribute" {
    for_each = each.value.attributes
    content {
      name = attribute.key
      type = attribute.value
    }
  }

  # GSI capacity stays under Terraform's management. In the AWS provider 5.x
  # `global_secondary_index` is a set, and ignore_changes cannot address an
  # attribute of a set element (`global_secondary_index[0].read_capacity` is
  # "Cannot index a set value"); the only option, ignoring the whole block, would
  # also silently skip every new, changed or removed index. So in PROVISIONED mode
  # every apply that finds auto scaling above the minimum resets that index to its
  # minimum (one of DynamoDB's limited daily decreases), and auto scaling raises it
  # again within minutes. The minimums (capacity_overrides in
  # environments/production) are therefore set at the steady-state load, so the
  # dip stays harmless; DEPLOYMENT.md ("On-demand in staging, provisioned in
  # production") has the trade-off.
  dynamic "global_secondary_index" {
    for_each = each.value.indexes
    content {
      name            = global_secondary_index.key
      hash_key        = global_secondary_index.value.hash_key
      range_key       = global_secondary_index.value.range_key
      projection_type = global_secondary_index.value.projection_type
      # Only INCLUDE indexes list attributes; null (unset) for the others.
      non_key_attributes = try(global_secondary_index.value.non_key_attributes, null)
      read_capacity      = local.provisioned ? local.index_capacity["${each.key}/${global_secondary_index.key}"].read_min : null
      write_capacity     = local.provisioned ? local.index_capacity["${each.key}/${global_secondary_index.key}"].write_min : null
    }
  }

  dynamic "ttl" {
    for_each = each.value.ttl_attribute == null ? [] : [each.value.ttl_attribute]
    content {
      attribute_name = ttl.value
      enabled        = true
    }
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = local.kms_key_arn
  }

  deletion_protection_enabled = var.deletion_protection

  tags = merge(local.tags, { "runway:table" = each.key })

  lifecycle {
    # Auto scaling owns the table's capacity once it exists (see autoscaling.tf).
    ignore_changes = [read_capacity, write_capacity]
  }
}
