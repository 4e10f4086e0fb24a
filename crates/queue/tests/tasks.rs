//! The Lua that writes delivery tasks (`with_task_functions`, used by
//! fan-out and every delivery script) writes what `DeliveryTask::parse`
//! reads: one format, pinned here against a real Redis.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hookline_queue::{ConsumerGroup, DeliveryTask, Fence, with_task_functions};
use hookline_testkit::RedisServer;

#[tokio::test]
async fn lua_tasks_are_what_delivery_task_reads() {
    let redis = RedisServer::start();
    let mut conn = redis.connection().await;
    let group = ConsumerGroup::new("tasks".into(), "g", "me");
    group.ensure(&mut conn).await.unwrap();
    let script = redis::Script::new(&with_task_functions(
        r"
enqueue_task(KEYS[1], 'dlv_1', 'evt_1', 'sub_1', 'acme', 'order.paid', '00-tp-01', '1700000000000', '1', '',
  '7:01JLOG')
redis.call('HSET', KEYS[2], 'evt', 'evt_2', 'sub', 'sub_2', 't', 'acme', 'et', 'lead.won', 'tp', '', 'n', '2')
enqueue_from_record(KEYS[1], ARGV[1], 'dlv_2', '1700000000001', 'replay')
return enqueue_from_record(KEYS[1], ARGV[1], 'dlv_gone', '1', '') and 1 or 0
",
    ));
    let gone: i64 = script.key("tasks").key("record:dlv_2").arg("record:").invoke_async(&mut conn).await.unwrap();
    assert_eq!(gone, 0, "no record, no task");
    let read = group.read_new(&mut conn, 10, Duration::from_millis(10)).await.unwrap();
    let tasks: Vec<DeliveryTask> = read.into_iter().map(|m| DeliveryTask::parse(&m.id, m.fields).unwrap()).collect();
    assert_eq!(
        tasks,
        [
            DeliveryTask {
                delivery_id: "dlv_1".into(),
                event_id: "evt_1".into(),
                subscription_id: "sub_1".into(),
                tenant: "acme".into(),
                event_type: "order.paid".into(),
                traceparent: "00-tp-01".into(),
                enqueued_ms: 1_700_000_000_000,
                attempt: 1,
                trigger: String::new(),
                fence: Fence::new("01JLOG", 7),
            },
            DeliveryTask {
                delivery_id: "dlv_2".into(),
                event_id: "evt_2".into(),
                subscription_id: "sub_2".into(),
                tenant: "acme".into(),
                event_type: "lead.won".into(),
                traceparent: String::new(),
                enqueued_ms: 1_700_000_000_001,
                attempt: 3,
                trigger: "replay".into(),
                fence: Fence::default(),
            },
        ]
    );
}

/// `log_finished` (Lua) appends the value `FinishedEntry::packed` built,
/// and `FinishedEntry` reads it back, a message with spaces included; an
/// entry of an older build (a field each) still reads; a subscription's log
/// leads to the tenant's entry, and both list it under the id naming that
/// entry.
#[tokio::test]
async fn finished_deliveries_are_what_log_finished_wrote() {
    use hookline_queue::{DeliveryLog, FinishedEntry, Partitions, Position, TimeRange};

    let redis = RedisServer::start();
    let mut conn = redis.connection().await;
    let keys = Partitions::new("hookline", 1).get(0);
    let (sub_log, tenant_log) =
        (DeliveryLog::of_subscription(&keys, "acme", "sub_1"), DeliveryLog::of_tenant(&keys, "acme"));
    let expected = [
        FinishedEntry {
            event_id: "evt_1".into(),
            subscription_id: "sub_1".into(),
            event_type: "order.paid".into(),
            created_ms: 1000,
            started_ms: 1015,
            duration_ms: 12,
            status_code: 200,
            error: "none".into(),
            message: String::new(),
            body: "b2s=".into(),
            trigger: "scheduled".into(),
        },
        FinishedEntry {
            event_id: "evt_2".into(),
            subscription_id: "sub_1".into(),
            event_type: "order.paid".into(),
            created_ms: 2000,
            // A clock behind the one that made the delivery.
            started_ms: 1990,
            duration_ms: 3,
            status_code: 204,
            error: "none".into(),
            message: "all  good, thanks ".into(),
            body: String::new(),
            trigger: "replay".into(),
        },
        FinishedEntry {
            event_id: "evt_3".into(),
            subscription_id: "sub_1".into(),
            event_type: "order.paid".into(),
            created_ms: 3000,
            started_ms: 3001,
            duration_ms: 5,
            status_code: 200,
            error: "none".into(),
            message: "written by an older build".into(),
            body: String::new(),
            trigger: "manual".into(),
        },
    ];
    let script = redis::Script::new(&with_task_functions(
        r"
log_finished(KEYS[1], KEYS[2], '0', '86400', ARGV[1])
log_finished(KEYS[1], KEYS[2], '0', '86400', ARGV[2])
local place = redis.call('XADD', KEYS[2], '*', 'evt', 'evt_3', 'sub', 'sub_1', 'et', 'order.paid', 'c', '3000', 'w', '1',
  'ld', '5', 'lc', '200', 'le', 'none', 'lm', 'written by an older build', 'lb', '', 'lt', 'manual')
redis.call('XADD', KEYS[1], '*', 'd', '@' .. place)
return 1
",
    ));
    let _: i64 = script
        .key(sub_log.key())
        .key(tenant_log.key())
        .arg(expected[0].packed())
        .arg(expected[1].packed())
        .invoke_async(&mut conn)
        .await
        .unwrap();
    let everything = TimeRange { start_ms: 0, end_ms: u64::MAX / 2 };
    let by_tenant = tenant_log.newer(&mut conn, everything, None, 10).await.unwrap().items;
    let by_sub = sub_log.newer(&mut conn, everything, None, 10).await.unwrap().items;
    assert_eq!(by_tenant.iter().map(|l| l.finished.clone().unwrap()).collect::<Vec<_>>(), expected);
    assert_eq!(by_sub.len(), 3);
    for (tenant_item, sub_item) in by_tenant.iter().zip(&by_sub) {
        let Position::Log { ms, seq } = tenant_item.position else { panic!("a log entry") };
        let id = hookline_domain::DeliveryId::of_log_entry("acme", ms, seq).to_string();
        assert_eq!((&tenant_item.delivery_id, &sub_item.delivery_id), (&id, &id));
        assert_eq!(sub_item.finished, tenant_item.finished);
        let read = FinishedEntry::read(&mut conn, &keys, "acme", (ms, seq)).await.unwrap();
        assert_eq!(read.as_ref(), tenant_item.finished.as_ref());
    }
    let raw: Vec<(String, Vec<String>)> =
        redis::cmd("XRANGE").arg(tenant_log.key()).arg("-").arg("+").query_async(&mut conn).await.unwrap();
    assert_eq!(raw[0].1, [FinishedEntry::FIELD.to_owned(), expected[0].packed()], "one field, the packed value");
}

/// `log_delivery` (Lua) writes what `DeliveryLog` reads; a listing pages
/// through the log and then the sorted set older builds kept, in both
/// directions, with no delivery twice or missed, and `trim_logs` trims
/// what is past the retention from every log written.
#[tokio::test]
async fn delivery_logs_list_what_log_delivery_wrote_then_the_legacy_index() {
    use hookline_queue::{DeliveryLog, Partitions, Position, TimeRange};

    let redis = RedisServer::start();
    let mut conn = redis.connection().await;
    let keys = Partitions::new("hookline", 1).get(0);
    let (sub_log, tenant_log) =
        (DeliveryLog::of_subscription(&keys, "acme", "sub_1"), DeliveryLog::of_tenant(&keys, "acme"));
    // Older builds' index: three deliveries, two sharing a score.
    for (score, id) in [(1_000, "dlv_a"), (2_000, "dlv_b"), (2_000, "dlv_c")] {
        let _: i64 = redis::cmd("ZADD")
            .arg(keys.legacy_subscription_index("sub_1"))
            .arg(score)
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let now: u64 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let script = redis::Script::new(&with_task_functions(
        "for i = 1, 5 do log_delivery(KEYS[1], KEYS[2], 'dlv_' .. i, log_cutoff(ARGV[1], ARGV[2]), ARGV[2]) end return 1",
    ));
    let _: i64 =
        script.key(sub_log.key()).key(tenant_log.key()).arg(now).arg(86_400).invoke_async(&mut conn).await.unwrap();
    let everything = TimeRange { start_ms: 0, end_ms: u64::MAX / 2 };
    let ids = |items: &[hookline_queue::Listed]| items.iter().map(|l| l.delivery_id.clone()).collect::<Vec<_>>();

    // Every delivery, `count` at a time, newest first or oldest first.
    let all = |newest_first: bool, count: usize| {
        let (mut conn, log) = (conn.clone(), sub_log.clone());
        async move {
            let (mut seen, mut after) = (Vec::new(), None::<Position>);
            loop {
                let batch = if newest_first {
                    log.older(&mut conn, everything, after.as_ref(), count).await
                } else {
                    log.newer(&mut conn, everything, after.as_ref(), count).await
                };
                let batch = batch.unwrap();
                seen.extend(ids(&batch.items));
                after = batch.items.last().map(|l| l.position.clone());
                if batch.done {
                    return seen;
                }
                assert!(seen.len() <= 8, "the listing ends: {seen:?}");
            }
        }
    };
    // Newest first, two at a time: the log, then the legacy index (a
    // page boundary falls between its two members of one score).
    assert_eq!(all(true, 2).await, ["dlv_5", "dlv_4", "dlv_3", "dlv_2", "dlv_1", "dlv_c", "dlv_b", "dlv_a"]);
    // Oldest first, three at a time: the legacy index, then the log.
    assert_eq!(all(false, 3).await, ["dlv_a", "dlv_b", "dlv_c", "dlv_1", "dlv_2", "dlv_3", "dlv_4", "dlv_5"]);

    // A time range: the legacy scores and the log entries' times.
    let legacy_only = TimeRange { start_ms: 1_500, end_ms: 2_500 };
    let batch = sub_log.older(&mut conn, legacy_only, None, 10).await.unwrap();
    assert_eq!((ids(&batch.items), batch.done), (vec!["dlv_c".to_owned(), "dlv_b".to_owned()], true));
    let tenant = tenant_log.older(&mut conn, TimeRange { start_ms: now - 1, end_ms: now + 60_000 }, None, 10).await;
    assert_eq!(ids(&tenant.unwrap().items), ["dlv_5", "dlv_4", "dlv_3", "dlv_2", "dlv_1"]);

    // `trim_logs` trims the entries past the retention from the logs
    // written: `MINID ~` drops the stream's nodes (up to 100 entries
    // each) that hold only such entries.
    let mut pipe = redis::pipe();
    for i in 1..=300 {
        pipe.cmd("XADD").arg("trim:sub").arg(format!("1000-{i}")).arg("d").arg(format!("dlv_old{i}")).ignore();
    }
    let _: () = pipe.query_async(&mut conn).await.unwrap();
    let one = redis::Script::new(&with_task_functions(
        "log_delivery(KEYS[1], KEYS[2], 'dlv_new', log_cutoff(ARGV[1], ARGV[2]), ARGV[2]) trim_logs()",
    ));
    let _: () = one.key("trim:sub").key("trim:tenant").arg(now).arg(5).invoke_async(&mut conn).await.unwrap();
    let left: u64 = redis::cmd("XLEN").arg("trim:sub").query_async(&mut conn).await.unwrap();
    assert!(left <= 101, "entries older than the retention are trimmed as the log is written ({left} left)");
    let last: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
        .arg("trim:sub")
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(last[0].1, ["d", "dlv_new"]);
}
