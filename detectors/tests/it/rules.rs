use keyward_detectors::{RuleSet, Scanner};
use std::sync::Arc;

fn scanner() -> Scanner {
    Scanner::new(Arc::new(RuleSet::builtin().expect("built-in rules load")))
}

/// Runs every rule's `examples` and `negatives` through the full scanner (all rules, base64
/// decoding on), and reports every failure at once.
#[test]
fn every_rule_example_matches_and_every_negative_does_not() {
    let scanner = scanner();
    let mut failures = Vec::new();
    for rule in scanner.rules().rules() {
        let id = rule.id().as_str();
        for (i, ex) in rule.examples().iter().enumerate() {
            let found = scanner.scan(ex.as_bytes());
            let mine: Vec<_> = found.iter().filter(|m| m.rule.as_str() == id).collect();
            if mine.is_empty() {
                let others: Vec<_> = found.iter().map(|m| m.rule.as_str()).collect();
                failures.push(format!(
                    "{id}: example #{i} did not match (other rules: {others:?})"
                ));
            }
        }
        for (i, neg) in rule.negatives().iter().enumerate() {
            let found = scanner.scan(neg.as_bytes());
            if found.iter().any(|m| m.rule.as_str() == id) {
                failures.push(format!("{id}: negative #{i} matched"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_rule_has_two_examples_and_a_negative() {
    let rules = RuleSet::builtin().unwrap();
    let thin: Vec<_> = rules
        .rules()
        .iter()
        .filter(|r| r.examples().len() < 2 || r.negatives().is_empty())
        .map(|r| r.id().to_string())
        .collect();
    assert!(
        thin.is_empty(),
        "rules with < 2 examples or no negative: {thin:?}"
    );
}

/// The built-in pack is big enough and covers every provider family keyward promises to find.
#[test]
fn builtin_pack_covers_required_providers() {
    let rules = RuleSet::builtin().unwrap();
    assert!(rules.len() >= 300, "only {} built-in rules", rules.len());
    // Id prefixes, one per provider or family.
    let required = "aws- gcp- azure- github- gitlab- bitbucket- npm- npmrc- pypi- pypirc- rubygems- \
        nuget- docker- netrc- slack- discord- telegram- microsoft-teams- stripe- square- braintree- \
        paypal- shopify- twilio- sendgrid- mailgun- mailchimp- openai- anthropic- huggingface- \
        cohere- datadog- newrelic- sentry- grafana- pagerduty- vault- terraform- digitalocean- \
        heroku- cloudflare- fastly- linode- okta- atlassian- twitter- facebook- firebase- postman- \
        databricks- doppler- 1password- private-key- jwt connection-string- url-credentials- \
        kubernetes- kubeconfig- htpasswd- generic- \
        alibaba- tencent- ibm- scaleway- hetzner- vultr- yandex- tailscale- ngrok- k3s- rancher- \
        openshift- hcp- consul- nomad- circleci- buildkite- travis- drone- jenkins- teamcity- \
        harness- octopus- codecov- sonarqube- snyk- jfrog- gitea- sourcegraph- jetbrains- pulumi- \
        infracost- prefect- vercel- netlify- render- railway- fly- deno- supabase- neon- \
        planetscale- aiven- clickhouse- dynatrace- honeycomb- splunk- sumologic- logzio- loggly- \
        rollbar- bugsnag- opsgenie- axiom- launchdarkly- posthog- mattermost- zulip- webex- \
        google-chat- vonage- plivo- messagebird- brevo- postmark- sparkpost- resend- mandrill- \
        notion- linear- figma- airtable- asana- contentful- trello- clickup- typeform- dropbox- \
        mapbox- algolia- auth0- stytch- bitwarden- salesforce- zoom- intercom- zendesk- hubspot- \
        twitch- zapier- ifttt- adobe- frameio- duffel- maxmind- cloudinary- razorpay- plaid- \
        flutterwave- paddle- mollie- gocardless- shippo- easypost- openrouter- nvidia- langsmith- \
        langfuse- pinecone- mistral- deepseek- together- elevenlabs- deepgram- assemblyai- \
        cerebras- wandb- stability- cratesio- clojars- cloudsmith- gemfury- gradle- yarnrc- \
        composer- maven- age- nostr- bip32- wireguard- minisign- signify- jwk- matrix-";
    let missing: Vec<_> = required
        .split_whitespace()
        .filter(|p| !rules.rules().iter().any(|r| r.id().as_str().starts_with(p)))
        .collect();
    assert!(missing.is_empty(), "no built-in rule for: {missing:?}");
    // Specific formats the pack must know, by id.
    for id in [
        "aws-access-key-id",
        "aws-secret-access-key",
        "aws-session-token",
        "gcp-api-key",
        "gcp-service-account-key",
        "azure-storage-account-key",
        "azure-sas-token",
        "github-pat-classic",
        "github-pat-fine-grained",
        "gitlab-pat",
        "npm-access-token",
        "private-key-rsa",
        "private-key-openssh",
        "private-key-pkcs8",
        "private-key-pkcs8-encrypted",
        "private-key-pgp",
        "private-key-putty",
        "connection-string-postgres",
        "connection-string-mongodb",
        "generic-password",
        "azure-storage-account-key-identifiable",
        "aws-bedrock-api-key",
        "cloudflare-user-api-token",
        "docker-swarm-join-token",
        "kubernetes-bootstrap-token",
        "vault-unseal-key",
        "circleci-personal-token",
        "sonarqube-user-token",
        "jfrog-api-key",
        "supabase-secret-key",
        "dynatrace-api-token",
        "hubspot-private-app-token",
        "age-secret-key",
        "wireguard-private-key",
    ] {
        assert!(rules.get(id).is_some(), "missing rule {id}");
    }
    // Checksummed token families carry their validator.
    for r in rules.rules() {
        let id = r.id().as_str();
        if id.starts_with("github-")
            && r.keywords()
                .iter()
                .any(|k| k.len() == 4 && k.ends_with('_'))
        {
            assert_eq!(r.validator(), Some("github-checksum"), "{id}");
        }
        assert!(!r.description().is_empty(), "{id} has no description");
    }
    assert_eq!(
        rules
            .get("npm-access-token")
            .and_then(keyward_detectors::Rule::validator),
        Some("npm-checksum")
    );
    for (id, validator) in [
        ("jwt", "jwt"),
        ("matrix-access-token", "matrix-checksum"),
        ("matrix-refresh-token", "matrix-checksum"),
        ("age-secret-key", "bech32"),
        ("nostr-private-key", "bech32"),
        ("bip32-extended-private-key", "base58check"),
    ] {
        assert_eq!(
            rules.get(id).and_then(keyward_detectors::Rule::validator),
            Some(validator),
            "{id}"
        );
    }
}

/// A JWT is reported whole (header, payload and signature), even one longer than the default
/// window, as OIDC id_tokens often are.
#[test]
fn long_jwt_is_captured_whole() {
    let rules = RuleSet::builtin().unwrap();
    let example = rules
        .get("jwt")
        .unwrap()
        .examples()
        .iter()
        .find(|e| e.len() > 700)
        .expect("a long jwt example");
    let start = example.find("eyJ").unwrap();
    let found = scanner().scan(example.as_bytes());
    let jwt: Vec<_> = found.iter().filter(|m| m.rule.as_str() == "jwt").collect();
    assert_eq!(jwt.len(), 1);
    assert_eq!(jwt[0].span, start..example.trim_end().len());
}
