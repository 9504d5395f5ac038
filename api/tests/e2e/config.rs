use std::path::Path;
use std::process::Command;

fn run(binary: &str, env: &[(&str, &str)]) -> (i32, String) {
    let path = Path::new(env!("CARGO_BIN_EXE_herald-api")).with_file_name(binary);
    let mut command = Command::new(path);
    command.env_clear().arg("check-config");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run binary");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_bad_setting_stops_either_binary_with_one_line_naming_it() {
    for binary in ["herald-api", "herald-worker"] {
        let (code, stderr) = run(binary, &[("HERALD_AUTH__JWT_SECRET", "too-short")]);
        assert_eq!(code, 1, "{binary}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{binary}: {stderr}");
        assert!(stderr.contains("auth.jwt_secret"), "{binary}: {stderr}");

        let secret = "s".repeat(40);
        let (code, stderr) = run(
            binary,
            &[
                ("HERALD_AUTH__JWT_SECRET", &secret),
                ("HERALD_EMAIL__SMTP_TLS", "sometimes"),
            ],
        );
        assert_eq!(code, 1);
        assert!(stderr.contains("email.smtp_tls"), "{binary}: {stderr}");

        let (code, stderr) = run(
            binary,
            &[
                ("HERALD_AUTH__JWT_SECRET", &secret),
                ("HERALD_JOBS", "/nonexistent/jobs.toml"),
            ],
        );
        assert_eq!(code, 1);
        assert!(stderr.contains("HERALD_JOBS"), "{binary}: {stderr}");

        let (code, stdout_ok) = run(binary, &[("HERALD_AUTH__JWT_SECRET", &secret)]);
        assert_eq!(code, 0, "{binary}: {stdout_ok}");
    }
}

#[test]
fn secrets_never_appear_in_the_error_line() {
    let (code, stderr) = run(
        "herald-worker",
        &[
            ("HERALD_AUTH__JWT_SECRET", "x"),
            ("HERALD_DATABASE__URL", "postgres://u:hunter2@db/x"),
        ],
    );
    assert_eq!(code, 1);
    assert!(!stderr.contains("hunter2"));
}
