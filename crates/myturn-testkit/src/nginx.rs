//! nginx (Debian's `nginx-light`) in the foreground with everything in
//! one directory: a main config written here around the site config the
//! test gives, checked (`nginx -t`) before it is started.

use std::path::Path;
use std::process::Command;

use crate::process::{output_ok, Peer};
use crate::scratch::write;

/// Writes `site` as `dir/myturn.conf`, includes it from a main config that
/// keeps pid, logs and temp files in `dir`, checks and starts nginx.
pub fn start(dir: &Path, site: &str) -> Peer {
    let d = dir.display();
    write(dir, "myturn.conf", site);
    let main = format!(
        "worker_processes 1;\nerror_log {d}/error.log info;\npid {d}/nginx.pid;\n{}\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           include {d}/myturn.conf;\n}}\n",
        // As root, workers would otherwise drop to a user that cannot read
        // the test's files.
        if is_root() { "user root;\n" } else { "" }
    );
    let conf = write(dir, "nginx.conf", main);
    output_ok(
        "nginx -t",
        Command::new("nginx")
            .args(["-t", "-p"])
            .arg(dir)
            .arg("-c")
            .arg(&conf),
    );
    let mut cmd = Command::new("nginx");
    cmd.args(["-p"])
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .args(["-g", "daemon off;"]);
    Peer::spawn("nginx", &mut cmd, dir)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}
