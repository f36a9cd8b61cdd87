//! Images the real Docker engine builds in the test (busybox from `docker import`, or
//! `FROM scratch`), each scanned through the engine, `docker save`, an OCI layout and a real
//! registry with the reports compared; plus hand-assembled layouts for whiteouts, corrupt
//! layers, digest mismatches and multi-arch indexes.
#![allow(clippy::many_single_char_names)] // a, b, c: the planted tokens

pub(crate) mod harness;

use crate::support::{gh_token, stderr};
use harness::{
    Entry, Images, Layout, auth_registry, digest, gzip, jar, layer_tar, open_registry, scan_image,
    scan_three_ways, skopeo_copy, with_secret,
};

#[test]
fn copy_then_rm_is_reported_deleted() {
    let token = gh_token(501);
    let mut images = Images::default();
    let base = images.busybox();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("key.txt"), format!("token = {token}\n")).unwrap();
    let tag = images.build(
        ctx.path(),
        &format!("FROM {base}\nCOPY key.txt /etc/app/key.txt\nRUN rm /etc/app/key.txt\n"),
        &[],
    );
    let findings = scan_three_ways(&tag);
    let hits = with_secret(&findings, &token);
    assert_eq!(hits.len(), 1, "{findings:#?}");
    let loc = &hits[0]["location"];
    assert_eq!(loc["path"], "etc/app/key.txt");
    assert_eq!(loc["deleted"], true);
    assert_eq!(loc["layer_index"], 1);
    assert_eq!(loc["line"], 1);
    assert_eq!(loc["column"], 9);
    assert!(
        loc["created_by"].as_str().unwrap().contains("COPY"),
        "{loc}"
    );
    assert!(loc["layer"].as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn build_arg_used_in_run_is_in_history() {
    let token = gh_token(502);
    let mut images = Images::default();
    let base = images.busybox();
    let ctx = tempfile::tempdir().unwrap();
    let tag = images.build(
        ctx.path(),
        &format!("FROM {base}\nARG DEPLOY_TOKEN\nRUN echo \"fetching with $DEPLOY_TOKEN\" > /dev/null && mkdir -p /app\n"),
        &["--build-arg", &format!("DEPLOY_TOKEN={token}")],
    );
    let findings = scan_three_ways(&tag);
    let hits = with_secret(&findings, &token);
    assert_eq!(hits.len(), 1, "{findings:#?}");
    let loc = &hits[0]["location"];
    assert!(
        loc["path"].as_str().unwrap().starts_with("<history>["),
        "{loc}"
    );
    assert!(
        loc["created_by"]
            .as_str()
            .unwrap()
            .contains("DEPLOY_TOKEN=")
    );
    // The RUN step made layer 1.
    assert_eq!(loc["layer_index"], 1);
    assert_eq!(loc["deleted"], false);
}

#[test]
fn env_secret_is_in_config_and_history() {
    let token = gh_token(503);
    let mut images = Images::default();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("hello.txt"), "hello\n").unwrap();
    let tag = images.build(
        ctx.path(),
        &format!("FROM scratch\nCOPY hello.txt /\nENV API_TOKEN={token}\n"),
        &[],
    );
    let findings = scan_three_ways(&tag);
    let mut paths: Vec<&str> = with_secret(&findings, &token)
        .iter()
        .map(|f| f["location"]["path"].as_str().unwrap())
        .collect();
    paths.sort_unstable();
    assert_eq!(paths.len(), 2, "{findings:#?}");
    // Env[0] is the PATH the engine sets.
    assert!(paths[0].starts_with("<config>/Env["), "{paths:?}");
    assert!(paths[1].starts_with("<history>["), "{paths:?}");
}

#[test]
fn multi_stage_final_image_does_not_carry_stage_one_secret() {
    let token = gh_token(504);
    let mut images = Images::default();
    let base = images.busybox();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("secret.txt"),
        format!("GITHUB_TOKEN={token}\n"),
    )
    .unwrap();
    let dockerfile = format!(
        "FROM {base} AS build\nCOPY secret.txt /secret.txt\nRUN echo built > /artifact.txt\n\
         FROM {base}\nCOPY --from=build /artifact.txt /artifact.txt\n"
    );
    // Positive control: the first stage on its own does carry it.
    let stage = images.build(ctx.path(), &dockerfile, &["--target", "build"]);
    let (_, found) = scan_image(&[&format!("docker-daemon:{stage}")]);
    assert_eq!(with_secret(&found, &token).len(), 1, "{found:#?}");

    let tag = images.build(ctx.path(), &dockerfile, &[]);
    let findings = scan_three_ways(&tag);
    assert!(with_secret(&findings, &token).is_empty(), "{findings:#?}");
}

#[test]
fn secret_inside_a_jar_inside_a_layer() {
    let token = gh_token(505);
    let mut images = Images::default();
    let ctx = tempfile::tempdir().unwrap();
    let inner = jar(&[(
        "config/app.properties",
        format!("# app\ngithub.token={token}\n").as_bytes(),
    )]);
    let app = jar(&[
        ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n"),
        ("BOOT-INF/lib/inner.jar", &inner),
    ]);
    std::fs::write(ctx.path().join("app.jar"), app).unwrap();
    let tag = images.build(ctx.path(), "FROM scratch\nCOPY app.jar /opt/app.jar\n", &[]);
    let findings = scan_three_ways(&tag);
    let hits = with_secret(&findings, &token);
    assert_eq!(hits.len(), 1, "{findings:#?}");
    let loc = &hits[0]["location"];
    assert_eq!(
        loc["path"],
        "opt/app.jar!BOOT-INF/lib/inner.jar!config/app.properties"
    );
    assert_eq!(loc["line"], 2);
    assert_eq!(loc["deleted"], false);

    // --archive-depth 1 opens app.jar but not the jar inside it.
    let (_, shallow) = scan_image(&["--archive-depth", "1", &format!("docker-daemon:{tag}")]);
    assert!(with_secret(&shallow, &token).is_empty(), "{shallow:#?}");
}

#[test]
fn registry_anonymous_and_auth_required() {
    let token = gh_token(506);
    let mut images = Images::default();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("k"), format!("{token}\n")).unwrap();
    let tag = images.build(ctx.path(), "FROM scratch\nCOPY k /k\n", &[]);

    let open = open_registry();
    let repo = format!("{}/anon/app", open.addr);
    skopeo_copy(
        &format!("docker-daemon:{tag}"),
        &format!("docker://{repo}:v1"),
        None,
    );
    let (out, found) = scan_image(&["--insecure", &format!("docker://{repo}:v1")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(with_secret(&found, &token).len(), 1);

    // By digest, too.
    let digest = std::process::Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{repo}:v1"))
        .output()
        .unwrap();
    let digest = String::from_utf8_lossy(&digest.stdout).trim().to_owned();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let (out, found) = scan_image(&["--insecure", &format!("docker://{repo}@{digest}")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(with_secret(&found, &token).len(), 1);

    // The htpasswd registry: no credentials is an error (exit 2), flags work.
    let reg = auth_registry();
    let repo = format!("{}/auth/app", reg.addr);
    skopeo_copy(
        &format!("docker-daemon:{tag}"),
        &format!("docker://{repo}:v1"),
        reg.creds.as_deref(),
    );
    let empty = tempfile::tempdir().unwrap();
    let none = empty.path().join("none.json");
    let (out, _) = scan_image(&[
        "--insecure",
        "--authfile",
        none.to_str().unwrap(),
        &format!("docker://{repo}:v1"),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("credentials"), "{}", stderr(&out));
    let (user, pass) = reg.creds.as_deref().unwrap().split_once(':').unwrap();
    let (out, found) = scan_image(&[
        "--insecure",
        "--username",
        user,
        "--password",
        pass,
        &format!("docker://{repo}:v1"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(with_secret(&found, &token).len(), 1);
}

#[test]
fn opaque_whiteouts_and_plain_whiteouts() {
    let (a, b, c, d) = (gh_token(511), gh_token(512), gh_token(513), gh_token(514));
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::new(dir.path());
    let (fa, fb, fc, fd) = (
        format!("a={a}\n"),
        format!("b={b}\n"),
        format!("c={c}\n"),
        format!("d={d}\n"),
    );
    let lower = layer_tar(&[
        Entry::Dir("etc/"),
        Entry::Dir("etc/app/"),
        Entry::File("etc/app/old.conf", fa.as_bytes()),
        Entry::Dir("etc/app/sub/"),
        Entry::File("etc/app/sub/deep.conf", fb.as_bytes()),
        Entry::File("etc/other.conf", fc.as_bytes()),
        Entry::File("etc/kept.conf", fd.as_bytes()),
    ]);
    let upper = layer_tar(&[
        Entry::Dir("etc/app/"),
        Entry::File("etc/app/.wh..wh..opq", b""),
        Entry::File("etc/app/new.conf", b"nothing\n"),
        Entry::File("etc/.wh.other.conf", b""),
    ]);
    let m = l.image("amd64", &[lower, upper], &[]);
    l.index(vec![m]);
    let (out, found) = scan_image(&[&format!("oci:{}:v1", dir.path().display())]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let deleted = |s: &str| with_secret(&found, s)[0]["location"]["deleted"].clone();
    assert_eq!(deleted(&a), true, "opaque dir hides etc/app/old.conf");
    assert_eq!(deleted(&b), true, "opaque dir hides etc/app/sub/deep.conf");
    assert_eq!(deleted(&c), true, ".wh.other.conf deletes etc/other.conf");
    assert_eq!(deleted(&d), false, "etc/kept.conf is untouched");
    assert_eq!(found.len(), 4);
}

#[test]
fn corrupt_layer_is_reported_and_the_rest_scanned() {
    let (good, lost) = (gh_token(521), gh_token(522));
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::new(dir.path());
    let first = layer_tar(&[Entry::File("good.txt", format!("{good}\n").as_bytes())]);
    let mut filler = Vec::new();
    for i in 0..20_000 {
        filler.extend_from_slice(format!("line {i} of filler text\n").as_bytes());
    }
    let second = layer_tar(&[
        Entry::File("filler.txt", &filler),
        Entry::File("lost.txt", format!("{lost}\n").as_bytes()),
    ]);
    let m = l.image("amd64", &[first, second.clone()], &[]);
    l.index(vec![m]);
    // Cut the second layer's gzip in half.
    let blob = l.blob_path(&digest(&gzip(&second)));
    let bytes = std::fs::read(&blob).unwrap();
    std::fs::write(&blob, &bytes[..bytes.len() / 2]).unwrap();

    let (out, found) = scan_image(&[&format!("oci:{}", dir.path().display())]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(with_secret(&found, &good).len(), 1, "{found:#?}");
    assert!(
        err.contains("layer 1") && err.contains(&digest(&gzip(&second))),
        "{err}"
    );

    // Bad gzip: garbage after a valid gzip header.
    let mut bad = gzip(b"x")[..10].to_vec();
    bad.extend_from_slice(&[0xff; 64]);
    std::fs::write(&blob, bad).unwrap();
    let (out, found) = scan_image(&[&format!("oci:{}", dir.path().display())]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(with_secret(&found, &good).len(), 1);
    assert!(stderr(&out).contains("layer 1"), "{}", stderr(&out));
}

#[test]
fn digest_mismatch_fails_naming_the_layer() {
    let (orig, planted) = (gh_token(531), gh_token(532));
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::new(dir.path());
    let layer = layer_tar(&[Entry::File("app.conf", format!("{orig}\n").as_bytes())]);
    let m = l.image("amd64", std::slice::from_ref(&layer), &[]);
    l.index(vec![m]);
    // Swap the blob for another valid layer under the same name.
    let name = digest(&gzip(&layer));
    let swapped = layer_tar(&[Entry::File("app.conf", format!("{planted}\n").as_bytes())]);
    std::fs::write(l.blob_path(&name), gzip(&swapped)).unwrap();

    let report = dir.path().join("report.jsonl");
    let (out, _) = scan_image(&[
        "--output",
        report.to_str().unwrap(),
        &format!("oci:{}:v1", dir.path().display()),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("digest mismatch") && err.contains(&name),
        "{err}"
    );
    assert!(err.contains("integrity check failed"), "{err}");
    // The report is still written: what is in the image is in the report.
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(text.contains(&planted), "{text}");
}

#[test]
fn bad_entries_are_reported_and_scanning_goes_on() {
    let (a, b, c) = (gh_token(541), gh_token(542), gh_token(543));
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::new(dir.path());
    let (fa, fb, fc) = (format!("{a}\n"), format!("{b}\n"), format!("{c}\n"));
    let layer = layer_tar(&[
        Entry::File("../../escape.txt", fa.as_bytes()),
        Entry::File("/abs/path.txt", fb.as_bytes()),
        Entry::Symlink("loop/a", "b"),
        Entry::Symlink("loop/b", "a"),
        Entry::Symlink("self", "self"),
        Entry::File("ok.txt", fc.as_bytes()),
    ]);
    let m = l.image("amd64", &[layer], &[]);
    l.index(vec![m]);
    let (out, found) = scan_image(&[&format!("oci:{}", dir.path().display())]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`..`") && err.contains("absolute path"),
        "{err}"
    );
    let path = |s: &str| with_secret(&found, s)[0]["location"]["path"].clone();
    assert_eq!(path(&a), "escape.txt");
    assert_eq!(path(&b), "abs/path.txt");
    assert_eq!(path(&c), "ok.txt");

    // An enormous entry is skipped (and said so at debug level), the rest scanned.
    let (out, found) = scan_image(&[
        "--max-file-size",
        "10",
        &format!("oci:{}", dir.path().display()),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(found.is_empty());
}

#[test]
fn multi_arch_index_scans_each_platform_and_each_layer_once() {
    let (shared, amd, arm) = (gh_token(551), gh_token(552), gh_token(553));
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::new(dir.path());
    let base = layer_tar(&[Entry::File(
        "etc/base.conf",
        format!("{shared}\n").as_bytes(),
    )]);
    let amd_layer = layer_tar(&[Entry::File("app/amd.conf", format!("{amd}\n").as_bytes())]);
    let arm_layer = layer_tar(&[Entry::File("app/arm.conf", format!("{arm}\n").as_bytes())]);
    let m1 = l.image("amd64", &[base.clone(), amd_layer], &[]);
    let m2 = l.image("arm64", &[base.clone(), arm_layer], &[]);
    l.multi_arch(&[m1, m2]);
    let target = format!("oci:{}:v1", dir.path().display());

    let out = crate::support::keyward()
        .env("KEYWARD_LOG", "debug")
        .args([
            "scan",
            "image",
            "--format",
            "jsonl",
            "--per-location",
            "--show-secrets",
            &target,
        ])
        .output()
        .unwrap();
    let found: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // The shared layer's secret is reported for both images, but the layer was read once.
    let shared_hits = with_secret(&found, &shared);
    assert_eq!(shared_hits.len(), 2, "{found:#?}");
    let images: std::collections::BTreeSet<String> = shared_hits
        .iter()
        .map(|f| f["location"]["image"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        images.iter().any(|i| i.contains("(linux/amd64)")),
        "{images:?}"
    );
    assert!(
        images.iter().any(|i| i.contains("(linux/arm64)")),
        "{images:?}"
    );
    assert_eq!(
        stderr(&out).matches("Layer already scanned").count(),
        1,
        "{}",
        stderr(&out)
    );
    assert_eq!(with_secret(&found, &amd).len(), 1);
    assert_eq!(with_secret(&found, &arm).len(), 1);

    let (_, only_arm) = scan_image(&["--platform", "linux/arm64", &target]);
    assert_eq!(with_secret(&only_arm, &arm).len(), 1);
    assert!(with_secret(&only_arm, &amd).is_empty());
    assert_eq!(with_secret(&only_arm, &shared).len(), 1);

    // The same index through a registry (skopeo copy --all) gives the same findings.
    let reg = open_registry();
    let repo = format!("{}/multi/app", reg.addr);
    std::process::Command::new("skopeo")
        .args(["copy", "-q", "--all", "--dest-tls-verify=false"])
        .arg(&target)
        .arg(format!("docker://{repo}:v1"))
        .status()
        .unwrap()
        .success()
        .then_some(())
        .expect("skopeo copy --all");
    let (out, via_registry) = scan_image(&["--insecure", &format!("docker://{repo}:v1")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let norm = |v: &[serde_json::Value]| {
        let mut s: Vec<String> = v.iter().map(harness::comparable).collect();
        s.sort();
        s
    };
    assert_eq!(norm(&via_registry), norm(&found));
}

#[test]
fn a_secret_in_two_layers_is_one_finding_that_began_in_the_lower() {
    let token = gh_token(520);
    let dir = tempfile::tempdir().unwrap();
    let l = Layout::new(dir.path());
    let line = format!("token = {token}\n");
    let layers = [
        layer_tar(&[
            Entry::Dir("etc/"),
            Entry::File("etc/a.conf", line.as_bytes()),
        ]),
        layer_tar(&[Entry::File("etc/other.conf", b"nothing here\n")]),
        layer_tar(&[Entry::File("etc/b.conf", line.as_bytes())]),
    ];
    let m = l.image("amd64", &layers, &[]);
    l.index(vec![m]);
    let out = crate::support::keyward()
        .args(["scan", "image", "-f", "json"])
        .arg(format!("oci:{}:v1", dir.path().display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let found = crate::support::json(&out);
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = &found[0];
    assert_eq!(f["location"]["layer_index"], 0, "{f:#}");
    assert_eq!(f["location"]["path"], "etc/a.conf");
    let places: Vec<(u64, &str)> = f["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["layer_index"].as_u64().unwrap(),
                l["path"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(places, [(0, "etc/a.conf"), (2, "etc/b.conf")]);
}
