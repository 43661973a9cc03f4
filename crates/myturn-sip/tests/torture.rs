use myturn_sip::msg;
#[test]
fn dump() {
    for dir in ["tests/torture/rfc4475", "tests/torture/rfc5118"] {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let data = std::fs::read(&p).unwrap();
            let r = msg::parse(&data);
            println!(
                "{:30} {:?}",
                p.file_name().unwrap().to_string_lossy(),
                r.as_ref()
                    .map(|m| m.method().to_string())
                    .map_err(|e| e.error.clone())
            );
        }
    }
}
