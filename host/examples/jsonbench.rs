use mtp_host::state::RecordView;
fn main() {
    let mode = std::env::args().nth(1).unwrap();
    let json = r#"{"outcome":{"state":"published","message":"published","keys":{"sequence_key":"bEnChSeQuEnCe0000000000"},"progress":{"files_done":100,"files_total":100,"bytes_done":0,"bytes_total":0},"next_action":null},"last_error":null}"#;
    let docs: Vec<String> = (0..2000).map(|i| json.replace("0000000000", &format!("{i:010}"))).collect();
    let mut n = 0usize;
    for d in &docs {
        match mode.as_str() {
            "view" => { let v = RecordView::from_json(d); n += v.state().is_some() as usize; }
            "ignored" => { let _: serde::de::IgnoredAny = serde_json::from_str(d).unwrap(); n += 1; }
            "value" => { let v: serde_json::Value = serde_json::from_str(d).unwrap(); n += v.is_object() as usize; }
            "full" => { let v = mtp_host::state::IntegrationRecord::from_json(d); n += v.state().is_some() as usize; }
            _ => {}
        }
    }
    println!("{n}");
}
