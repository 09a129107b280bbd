// SPDX-License-Identifier: GPL-2.0
use super::*;

const COLS: &[&str] = &["name", "size", "note", "cap"];

fn doc() -> Doc {
    let mut t = Table::new(COLS, &["name", "size", "note"]);
    t.push(vec![
        Value::text("a"),
        Value::Bytes(20 << 30),
        Value::text("x"),
        Value::Percent(5),
    ]);
    t.push(vec![
        Value::text("longer-name"),
        Value::Bytes(512),
        Value::Null,
        Value::Percent(100),
    ]);
    t.push(vec![
        Value::text("ünï"),
        Value::Null,
        Value::text("tab\there \"q\" \\ \u{1}"),
        Value::Number("1.250".into()),
    ]);
    vec![Section {
        key: "items",
        title: Some("items"),
        layout: Layout::Rows,
        table: t,
    }]
}

fn opts(f: impl FnOnce(&mut OutputOpts)) -> OutputOpts {
    let mut o = OutputOpts::default();
    f(&mut o);
    o
}

#[test]
fn aligned_table() {
    let s = render(&doc(), &OutputOpts::default()).unwrap();
    assert_eq!(
        s,
        "NAME          SIZE  NOTE\n\
         a            20.0G  x\n\
         longer-name   512B  -\n\
         ünï              -  tab\there \"q\" \\ \u{1}\n"
    );
}

#[test]
fn scripted_parsable_columns() {
    let s = render(
        &doc(),
        &opts(|o| {
            o.scripted = true;
            o.parsable = true;
        }),
    )
    .unwrap();
    assert_eq!(
        s,
        "a\t21474836480\tx\nlonger-name\t512\t-\nünï\t-\ttab\there \"q\" \\ \u{1}\n"
    );
    let s = render(
        &doc(),
        &opts(|o| o.columns = Some(vec!["cap".into(), "name".into()])),
    )
    .unwrap();
    assert_eq!(s, "  CAP  NAME\n   5%  a\n 100%  longer-name\n1.250  ünï\n");
    let s = render(
        &doc(),
        &opts(|o| {
            o.columns = Some(vec!["cap".into()]);
            o.parsable = true;
        }),
    )
    .unwrap();
    assert_eq!(s, "  CAP\n    5\n  100\n1.250\n");
    let e = render(
        &doc(),
        &opts(|o| o.columns = Some(vec!["size".into(), "wat".into()])),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "unknown column \"wat\" for -o; valid columns: name,size,note,cap"
    );
}

#[test]
fn empty_table_has_header_only() {
    let d = vec![Section {
        key: "x",
        title: None,
        layout: Layout::Rows,
        table: Table::new(COLS, COLS),
    }];
    assert_eq!(
        render(&d, &OutputOpts::default()).unwrap(),
        "NAME  SIZE  NOTE  CAP\n"
    );
    assert_eq!(render(&d, &opts(|o| o.scripted = true)).unwrap(), "");
    assert_eq!(
        render(&d, &opts(|o| o.json = true)).unwrap(),
        "{\n  \"x\": []\n}\n"
    );
}

#[test]
fn json_all_columns_and_escaping() {
    let s = render(&doc(), &opts(|o| o.json = true)).unwrap();
    assert_eq!(
        s,
        "{\n  \"items\": [\n    {\n      \"name\": \"a\",\n      \"size\": 21474836480,\n      \"note\": \"x\",\n      \"cap\": 5\n    },\n    \
         {\n      \"name\": \"longer-name\",\n      \"size\": 512,\n      \"note\": null,\n      \"cap\": 100\n    },\n    \
         {\n      \"name\": \"ünï\",\n      \"size\": null,\n      \"note\": \"tab\\u0009here \\\"q\\\" \\\\ \\u0001\",\n      \"cap\": 1.250\n    }\n  ]\n}\n"
    );
}

#[test]
fn record_and_multiple_sections() {
    let mut rec = Table::new(&["name", "size"], &["name", "size"]);
    rec.push(vec![Value::text("tank"), Value::Bytes(4096)]);
    let mut d = vec![Section {
        key: "pool",
        title: Some("pool"),
        layout: Layout::Record,
        table: rec,
    }];
    assert_eq!(
        render(&d, &OutputOpts::default()).unwrap(),
        "name  tank\nsize  4.00K\n"
    );
    d.extend(doc());
    let s = render(&d, &OutputOpts::default()).unwrap();
    assert!(
        s.starts_with("pool:\nname  tank\nsize  4.00K\n\nitems:\nNAME "),
        "{s}"
    );
    let s = render(&d, &opts(|o| o.scripted = true)).unwrap();
    assert!(
        s.starts_with("name\ttank\nsize\t4.00K\n\na\t20.0G\tx\n"),
        "{s}"
    );
    let s = render(&d, &opts(|o| o.json = true)).unwrap();
    assert!(
        s.starts_with(
            "{\n  \"pool\": {\n    \"name\": \"tank\",\n    \"size\": 4096\n  },\n  \"items\": [\n"
        ),
        "{s}"
    );
}

#[test]
fn limits_read_none_when_zero() {
    let mut rec = Table::new(
        &["quota", "reservation", "other"],
        &["quota", "reservation", "other"],
    );
    rec.push(vec![
        Value::Limit(0),
        Value::Limit(10 << 30),
        Value::opt_limit(None),
    ]);
    let d = vec![Section {
        key: "volume",
        title: None,
        layout: Layout::Record,
        table: rec,
    }];
    assert_eq!(
        render(&d, &OutputOpts::default()).unwrap(),
        "quota        none\nreservation  10.0G\nother        -\n"
    );
    assert_eq!(
        render(&d, &opts(|o| o.parsable = true)).unwrap(),
        "quota        0\nreservation  10737418240\nother        -\n"
    );
    assert_eq!(
        render(&d, &opts(|o| o.json = true)).unwrap(),
        "{\n  \"volume\": {\n    \"quota\": 0,\n    \"reservation\": 10737418240,\n    \"other\": null\n  }\n}\n"
    );
}
