//! A real nginx serving WebDAV on 127.0.0.1, as a Linux distribution point does: started on a
//! free port with a temporary configuration, in the foreground, and killed when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DAV_EXT: &str = "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so";

pub struct Nginx {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    /// Bytes per second nginx sends a response at (0 = no limit).
    limit_rate: u64,
    auth: Option<(String, String)>,
}

impl Nginx {
    /// Starts nginx with WebDAV (PUT, DELETE, MKCOL, COPY, MOVE, and PROPFIND from the dav-ext
    /// module) on a free port.
    pub fn start(limit_rate: u64, auth: Option<(&str, &str)>) -> Nginx {
        assert!(
            super::have("nginx") && Path::new(DAV_EXT).is_file(),
            "nginx with the WebDAV ext module is missing: run ./scripts/setup.sh"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["www", "body", "logs"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut n = Nginx {
            dir,
            port,
            child: None,
            limit_rate,
            auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
        };
        n.restart();
        n
    }

    /// The directory nginx serves: what the DP holds.
    pub fn www(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    fn write_config(&self) -> PathBuf {
        let d = self.dir.path().display();
        // Workers of a root master switch to `nobody`, which cannot write the test's
        // directories; a single process run by whoever runs the tests avoids that.
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root root;"
        } else {
            ""
        };
        let auth = match &self.auth {
            Some((u, p)) => {
                let file = self.dir.path().join("htpasswd");
                std::fs::write(&file, format!("{u}:{{PLAIN}}{p}\n")).expect("htpasswd");
                format!(
                    "auth_basic \"dp\"; auth_basic_user_file {};",
                    file.display()
                )
            }
            None => String::new(),
        };
        let limit = if self.limit_rate > 0 {
            format!("limit_rate {};", self.limit_rate)
        } else {
            String::new()
        };
        let conf = format!(
            "load_module {DAV_EXT};
daemon off;
master_process off;
{user}
pid {d}/nginx.pid;
error_log {d}/logs/error.log;
events {{ worker_connections 64; }}
http {{
  access_log {d}/logs/access.log;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/body;
  fastcgi_temp_path {d}/body;
  uwsgi_temp_path {d}/body;
  scgi_temp_path {d}/body;
  client_max_body_size 0;
  server {{
    listen 127.0.0.1:{port};
    root {d}/www;
    location / {{
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
      {limit}
      {auth}
    }}
  }}
}}
",
            port = self.port
        );
        let path = self.dir.path().join("nginx.conf");
        std::fs::write(&path, conf).expect("nginx.conf");
        path
    }

    /// Starts (again) on the same port, serving the same directory.
    pub fn restart(&mut self) {
        self.stop();
        let conf = self.write_config();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(self.dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(self.dir.path().join("logs/error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "nginx exited with {status}: {}",
                    std::fs::read_to_string(self.dir.path().join("logs/error.log"))
                        .unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills nginx at once, as a crash or a pulled cable would stop it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}
