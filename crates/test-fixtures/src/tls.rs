//! Certificates for the TLS tests, made at test time with the `openssl` command.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TempDir;

/// Key options of every certificate: an unencrypted P-256 key.
const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// Runs `openssl` with `args` in `dir`.
///
/// # Panics
/// When `openssl` cannot run or fails (the message holds its stderr).
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (the TLS tests make their certificates with the openssl CLI)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Certificates made at test time in a temporary directory (PEM files, read with
/// [`file`](Self::file)):
///
/// - `ca.crt` / `ca.key`: a CA;
/// - `server.crt` / `server.key`: a server certificate for `127.0.0.1` and `localhost`,
///   signed by the CA;
/// - `client.crt` / `client.key`: a client certificate signed by the CA;
/// - `other-ca.crt` / `other-ca.key`: an unrelated CA.
#[derive(Debug)]
pub struct TestPki {
    dir: TempDir,
}

impl TestPki {
    /// Makes the certificates.
    ///
    /// # Panics
    /// When `openssl` is missing or fails, or a file cannot be written.
    pub fn new() -> TestPki {
        let dir = TempDir::new("pki");
        let d = dir.path();
        for (name, cn) in [("ca", "stratacache test CA"), ("other-ca", "unrelated CA")] {
            let key = format!("{name}.key");
            let crt = format!("{name}.crt");
            let subj = format!("/CN={cn}");
            let mut args = vec!["req", "-x509"];
            args.extend(EC_KEY);
            args.extend(["-keyout", &key, "-out", &crt, "-days", "2", "-subj", &subj]);
            openssl(d, &args);
        }
        std::fs::write(
            d.join("server.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write server.ext");
        std::fs::write(
            d.join("client.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
        .expect("write client.ext");
        for (name, cn) in [
            ("server", "localhost"),
            ("client", "stratacache test client"),
        ] {
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let crt = format!("{name}.crt");
            let ext = format!("{name}.ext");
            let subj = format!("/CN={cn}");
            let mut args = vec!["req"];
            args.extend(EC_KEY);
            args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
            openssl(d, &args);
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &crt,
                    "-days",
                    "2",
                    "-extfile",
                    &ext,
                ],
            );
        }
        TestPki { dir }
    }

    /// Makes `self-signed.crt` / `self-signed.key`: a server certificate for `127.0.0.1` and
    /// `localhost` that no CA vouches for. Returns the two paths (certificate, key).
    ///
    /// # Panics
    /// When `openssl` fails.
    pub fn self_signed(&self) -> (PathBuf, PathBuf) {
        let mut args = vec!["req", "-x509"];
        args.extend(EC_KEY);
        args.extend([
            "-keyout",
            "self-signed.key",
            "-out",
            "self-signed.crt",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ]);
        openssl(self.dir.path(), &args);
        (self.file("self-signed.crt"), self.file("self-signed.key"))
    }

    /// The directory that holds the files, removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The path of one of the files (`"ca.crt"`, `"server.key"`, …).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}
