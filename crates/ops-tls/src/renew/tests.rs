//! Renewal options: validation, threshold default, kebab-case parsing, output tails.

use super::*;

fn command(container: &str, cmd: &[&str]) -> RenewCommand {
    RenewCommand {
        container: container.to_owned(),
        cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
        timeout_secs: None,
    }
}

#[test]
fn options_need_a_command_and_a_target() {
    let mut options = RenewOptions::default();
    assert!(options.validate().is_err());
    options.commands = vec![command("certbot", &["certbot", "renew"])];
    assert!(options.validate().is_err(), "no target");
    options.force = true;
    assert!(options.validate().is_ok());
    options.commands.push(command("nginx", &[]));
    assert!(options.validate().is_err(), "empty program");
}

#[test]
fn threshold_defaults_to_warn_days() {
    let mut options = RenewOptions::default();
    assert_eq!(options.renew_below_days(), 30);
    options.check.warn_days = 21;
    assert_eq!(options.renew_below_days(), 21);
    options.renew_below_days = Some(7);
    assert_eq!(options.renew_below_days(), 7);
}

#[test]
fn options_parse_in_kebab_case() {
    let options: RenewOptions = serde_json::from_str(
        r#"{"paths": ["/etc/letsencrypt/live"], "renew-below-days": 20,
            "commands": [{"container": "certbot", "cmd": ["certbot", "renew"], "timeout-secs": 300},
                         {"container": "nginx", "cmd": ["nginx", "-s", "reload"]}],
            "check": {"warn-days": 25}}"#,
    )
    .unwrap();
    assert_eq!(options.commands.len(), 2);
    assert_eq!(options.commands[0].timeout_secs, Some(300));
    assert_eq!(options.renew_below_days(), 20);
    assert_eq!(options.check.warn_days, 25);
    assert!(serde_json::from_str::<RenewOptions>(r#"{"force": true, "dry-run": true}"#).is_err());
}

#[test]
fn long_output_keeps_its_end_on_a_char_boundary() {
    let text = format!("{}é{}", "a".repeat(OUTPUT_TAIL_BYTES), "the error");
    let kept = tail(&text);
    assert!(kept.len() <= OUTPUT_TAIL_BYTES);
    assert!(kept.ends_with("the error"));
    assert_eq!(tail("short"), "short");
}
