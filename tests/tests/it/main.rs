//! keyward-tests' own tests: the shipped files and the harness, against the real services.

mod prometheus; // packaging/prometheus: promtool/amtool checks, and an alert reaching a webhook
