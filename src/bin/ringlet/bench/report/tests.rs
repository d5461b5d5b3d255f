//! `bench report`: the table, the verdicts, the chart and the records read
//! back, on records made here.

use super::*;

fn rec(case: &str, server: &str, round: u32, rate: f64, cpu: f64) -> Record {
    Record {
        case: case.into(),
        server: server.into(),
        round,
        server_cpu_s: cpu,
        client_cpu_s: None,
        outcome: RecordOutcome {
            messages: 1_000_000,
            per_second: rate,
            mb_per_second: 1.0,
            latency_us: Latency {
                p50: 10,
                p99: 100,
                p999: 200,
                max: 300,
            },
            errors: 0,
        },
    }
}

#[test]
fn medians_ratios_and_verdicts() {
    let records = vec![
        rec("a", "uring", 0, 120.0, 1.0),
        rec("a", "epoll", 0, 100.0, 2.0),
        rec("a", "uring", 1, 130.0, 1.0),
        rec("a", "epoll", 1, 100.0, 2.0),
        rec("a", "uring", 2, 90.0, 1.0),
        rec("a", "epoll", 2, 100.0, 2.0),
    ];
    let (md, ratios) = table(&records, "uring", "epoll").unwrap();
    assert!((ratios[0].throughput - 1.2).abs() < 1e-9, "{md}");
    assert!((ratios[0].cpu - 0.5).abs() < 1e-9);
    assert!(md.contains("no consistent difference"), "{md}");
    assert!(md.contains("uring better in every round"), "{md}");
}

#[test]
fn client_cpu_gets_its_column_and_ratio_where_measured() {
    let with = |case, server, round, client| Record {
        client_cpu_s: Some(client),
        ..rec(case, server, round, 100.0, 1.0)
    };
    let records = vec![
        with("a", "uring", 0, 0.5),
        with("a", "epoll", 0, 2.0),
        with("a", "uring", 1, 0.6),
        with("a", "epoll", 1, 2.0),
        rec("b", "uring", 0, 100.0, 1.0),
        rec("b", "epoll", 0, 100.0, 1.0),
    ];
    let (md, ratios) = table(&records, "uring", "epoll").unwrap();
    // 1M messages per run: seconds per M are the seconds themselves.
    assert!(
        md.contains("| a | uring | 100 (100–100) | 1.0 | 1.00 (1.00–1.00) | 0.55 (0.50–0.60) |"),
        "{md}"
    );
    assert!(
        ratios[0]
            .client_cpu
            .is_some_and(|c| (c - 0.275).abs() < 1e-9),
        "{md}"
    );
    assert!(
        md.contains("**0.28×** (uring better in every round)"),
        "{md}"
    );
    // Records from before the column: a dash, no ratio.
    assert!(
        md.contains("| b | uring | 100 (100–100) | 1.0 | 1.00 (1.00–1.00) | – |"),
        "{md}"
    );
    assert!(ratios[1].client_cpu.is_none());
}

#[test]
fn records_without_client_cpu_still_parse() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raw.jsonl");
    std::fs::write(
        &path,
        r#"{"case":"a","server":"uring","round":0,"server_cpu_s":1.5,"outcome":{"messages":10,"per_second":5.0,"mb_per_second":0.1,"latency_us":{"p50":1,"p99":2,"p999":3,"max":4},"errors":0}}
{"case":"a","server":"uring","round":1,"server_cpu_s":1.5,"client_cpu_s":0.25,"outcome":{"messages":10,"per_second":5.0,"mb_per_second":0.1,"latency_us":{"p50":1,"p99":2,"p999":3,"max":4},"errors":0}}
"#,
    )
    .unwrap();
    let records = read_records(&path).unwrap();
    assert_eq!(records[0].client_cpu_s, None);
    assert_eq!(records[1].client_cpu_s, Some(0.25));
}

#[test]
fn the_chart_is_an_svg() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.svg");
    let ratios = vec![Ratios {
        case: "echo 64 B".into(),
        throughput: 1.1,
        cpu: 0.8,
        client_cpu: None,
        p99: 1.0,
    }];
    chart(&ratios, "uring", "epoll", &path).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("echo 64 B"),
        "{svg}"
    );
}

#[test]
fn a_server_with_no_record_is_an_error_that_names_the_ones_there() {
    let records = vec![
        rec("a", "uring", 0, 1.0, 1.0),
        rec("a", "epoll", 0, 1.0, 1.0),
    ];
    let err = table(&records, "nginx", "epoll").unwrap_err().to_string();
    assert_eq!(
        err,
        "no record for subject nginx; the records have: uring, epoll"
    );
    let err = table(&records, "uring", "tokio").unwrap_err().to_string();
    assert_eq!(
        err,
        "no record for baseline tokio; the records have: uring, epoll"
    );
}
