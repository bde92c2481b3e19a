use std::path::{Path, PathBuf};

use serde_json::json;

use super::*;
use crate::load_app;

fn app_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The standard app's YAML files, by path relative to the app directory.
fn app_files() -> Files {
    files_of_app(&app_root())
}

fn files_of_app(root: &Path) -> Files {
    let mut files = Files::new();
    for directory in ["metadata", "workflows"] {
        collect(root, Path::new(directory), &mut files);
    }
    files
}

fn collect(root: &Path, relative: &Path, files: &mut Files) {
    for entry in std::fs::read_dir(root.join(relative)).unwrap() {
        let name = entry.unwrap().file_name();
        let path = relative.join(&name);
        if root.join(&path).is_dir() {
            collect(root, &path, files);
        } else if path
            .extension()
            .is_some_and(|extension| extension == "yaml")
        {
            let text = std::fs::read_to_string(root.join(&path)).unwrap();
            files.insert(path.to_string_lossy().replace('\\', "/"), text);
        }
    }
}

fn schema() -> Schema {
    load_app(&app_root()).unwrap()
}

/// Loads the standard app with `changes` applied (a copy in a temporary directory): it must
/// load without a diagnostic. Returns the new schema and the changes as a line diff.
fn load_changed(changes: &Changes) -> (Schema, String) {
    let directory = tempfile::tempdir().unwrap();
    for part in ["metadata", "workflows", "scripts"] {
        copy_tree(&app_root().join(part), &directory.path().join(part));
    }
    let files = app_files();
    let mut diff = String::new();
    for (path, text) in changes {
        std::fs::write(directory.path().join(path), text).unwrap();
        diff.push_str(&format!("--- {path}\n{}", line_diff(&files[path], text)));
    }
    let schema = load_app(directory.path()).unwrap_or_else(|errors| panic!("{errors}\n{diff}"));
    (schema, diff)
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The lines removed (`-`) and added (`+`), each with its line number in the old or the new
/// text, on a longest common subsequence of lines.
fn line_diff(old: &str, new: &str) -> String {
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    let mut lengths = vec![vec![0usize; new.len() + 1]; old.len() + 1];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            lengths[i][j] = if old[i] == new[j] {
                lengths[i + 1][j + 1] + 1
            } else {
                lengths[i + 1][j].max(lengths[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            i += 1;
            j += 1;
        } else if j < new.len() && (i == old.len() || lengths[i][j + 1] >= lengths[i + 1][j]) {
            out.push_str(&format!("+{:>3} {}\n", j + 1, new[j]));
            j += 1;
        } else {
            out.push_str(&format!("-{:>3} {}\n", i + 1, old[i]));
            i += 1;
        }
    }
    out
}

fn label(en: &str, zh: &str) -> LabelForm {
    LabelForm {
        en: en.to_owned(),
        zh: zh.to_owned(),
    }
}

fn new_field_form(name: &str, field_type: &str) -> FieldForm {
    FieldForm {
        name: name.to_owned(),
        field_type: field_type.to_owned(),
        label: LabelForm::default(),
        help: LabelForm::default(),
        options: Vec::new(),
        required: false,
        unique: false,
        mask: false,
        default: None,
        section: None,
        list_column: false,
    }
}

#[test]
fn a_new_field_is_written_like_the_other_fields_and_shown_where_the_form_says() {
    let schema = schema();
    let mut form = new_field_form("wechat_id", "text");
    form.label = label("WeChat ID", "微信号");
    form.unique = true;
    form.section = Some(0);
    form.list_column = true;
    let changes = save_field(&app_files(), &schema, "lead", &form).unwrap();
    let (loaded, diff) = load_changed(&changes);
    let field = &loaded.object("lead").unwrap().fields["wechat_id"];
    assert!(field.unique);
    insta::assert_snapshot!(diff);
}

#[test]
fn an_unchanged_field_form_changes_no_file() {
    let schema = schema();
    for (object, name) in [
        ("lead", "source"),
        ("lead", "phone"),
        ("opportunity", "stage"),
    ] {
        let form = field_form(&app_files(), object, name).unwrap();
        let changes = save_field(&app_files(), &schema, object, &form).unwrap();
        assert!(changes.is_empty(), "{object}.{name}: {changes:?}");
    }
}

#[test]
fn editing_a_field_changes_only_the_settings_that_differ() {
    let schema = schema();
    let mut form = field_form(&app_files(), "lead", "source").unwrap();
    form.label.zh = "来源渠道".to_owned();
    form.required = true;
    form.options.insert(
        2,
        ChoiceOptionForm {
            key: "douyin".to_owned(),
            label: label("Douyin", "抖音"),
        },
    );
    form.options.retain(|option| option.key != "advertising");
    form.default = Some(json!("web"));
    form.section = Some(0);
    let changes = save_field(&app_files(), &schema, "lead", &form).unwrap();
    let (loaded, diff) = load_changed(&changes);
    let field = &loaded.object("lead").unwrap().fields["source"];
    assert!(field.required);
    insta::assert_snapshot!(diff);
}

#[test]
fn a_field_form_names_the_field_at_fault() {
    let schema = schema();
    let files = app_files();
    let error =
        save_field(&files, &schema, "lead", &new_field_form("Bad Name", "text")).unwrap_err();
    assert_eq!(error.field, "name");
    let error = save_field(&files, &schema, "lead", &new_field_form("owner", "text")).unwrap_err();
    assert_eq!(error.field, "name");
    let mut form = new_field_form("level", "choice");
    form.options = vec![
        ChoiceOptionForm {
            key: "a".to_owned(),
            label: LabelForm::default(),
        },
        ChoiceOptionForm {
            key: "a".to_owned(),
            label: LabelForm::default(),
        },
    ];
    let error = save_field(&files, &schema, "lead", &form).unwrap_err();
    assert_eq!(error.field, "options/1/key");
    let mut form = new_field_form("level", "text");
    form.section = Some(9);
    let error = save_field(&files, &schema, "lead", &form).unwrap_err();
    assert_eq!(error.field, "section");
}

#[test]
fn list_settings_change_the_columns_search_fields_and_duplicate_keys() {
    let schema = schema();
    let form = ListSettingsForm {
        columns: ["name", "company", "status", "score", "owner"]
            .map(str::to_owned)
            .to_vec(),
        search: ["name", "company", "mobile"].map(str::to_owned).to_vec(),
        duplicates: vec![
            DuplicateKeyForm {
                fields: vec!["phone".to_owned()],
                action: DuplicateAction::Block,
            },
            DuplicateKeyForm {
                fields: vec!["mobile".to_owned()],
                action: DuplicateAction::Warn,
            },
            DuplicateKeyForm {
                fields: vec!["email".to_owned()],
                action: DuplicateAction::Warn,
            },
        ],
    };
    let changes = save_list_settings(&app_files(), &schema, "lead", &form).unwrap();
    let (loaded, diff) = load_changed(&changes);
    assert_eq!(loaded.object("lead").unwrap().duplicates.len(), 3);
    insta::assert_snapshot!(diff);
    let mut bad = form.clone();
    bad.search.push("nothing".to_owned());
    let error = save_list_settings(&app_files(), &schema, "lead", &bad).unwrap_err();
    assert_eq!(error.field, "search/3");
}

#[test]
fn a_duplicate_key_without_an_action_blocks_and_stays_written_without_one() {
    let schema = schema();
    let mut files = app_files();
    let lead = files.get_mut("metadata/objects/lead.yaml").unwrap();
    let written = "  - { fields: [phone], action: block }\n";
    assert!(lead.contains(written));
    *lead = lead.replacen(written, "  - { fields: [phone] }\n", 1);
    let form = list_settings_form(&files, "lead").unwrap();
    assert_eq!(form.duplicates.len(), 3);
    assert_eq!(form.duplicates[0].action, DuplicateAction::Block);
    let unchanged = save_list_settings(&files, &schema, "lead", &form).unwrap();
    assert!(unchanged.is_empty(), "{unchanged:?}");
    let mut warn = form.clone();
    warn.duplicates[0].action = DuplicateAction::Warn;
    let changes = save_list_settings(&files, &schema, "lead", &warn).unwrap();
    assert!(
        changes["metadata/objects/lead.yaml"].contains("  - { fields: [phone], action: warn }\n"),
        "{changes:?}"
    );
}

fn public_leads_form() -> PoolForm {
    PoolForm {
        claim_limit: 30,
        daily_claim_limit: 10,
        reclaim_cooldown: "7d".to_owned(),
        hide_until_claimed: ["phone", "mobile", "email"].map(str::to_owned).to_vec(),
        auto_return: Some(AutoReturnForm {
            schedule: "0 */10 * * * *".to_owned(),
            warn_before: "1d".to_owned(),
            rules: vec![
                ReturnRuleForm::NoFollowUpFor {
                    duration: "3d".to_owned(),
                    follow_up_field: Some("last_follow_up_at".to_owned()),
                },
                ReturnRuleForm::NotConvertedFor {
                    duration: "30d".to_owned(),
                    converted: json!({ "status": "converted" }),
                },
            ],
        }),
    }
}

#[test]
fn a_pool_form_keeps_the_comments_of_the_settings_it_does_not_change() {
    let schema = schema();
    let unchanged = save_pool(&app_files(), &schema, "public_leads", &public_leads_form()).unwrap();
    assert!(unchanged.is_empty(), "{unchanged:?}");
    let mut form = public_leads_form();
    form.claim_limit = 50;
    form.reclaim_cooldown = "3d".to_owned();
    form.hide_until_claimed.retain(|name| name != "email");
    if let Some(auto_return) = &mut form.auto_return {
        auto_return.rules[0] = ReturnRuleForm::NoFollowUpFor {
            duration: "5d".to_owned(),
            follow_up_field: Some("last_follow_up_at".to_owned()),
        };
        auto_return.rules.remove(1);
    }
    let changes = save_pool(&app_files(), &schema, "public_leads", &form).unwrap();
    let (loaded, diff) = load_changed(&changes);
    assert_eq!(loaded.pools["public_leads"].claim_limit, 50);
    insta::assert_snapshot!(diff);
    form.reclaim_cooldown = "7 days".to_owned();
    let error = save_pool(&app_files(), &schema, "public_leads", &form).unwrap_err();
    assert_eq!(error.field, "reclaim_cooldown");
}

/// The stages form showing opportunity_sales as it is.
fn opportunity_stages() -> Vec<StageForm> {
    let stage = |key: &str, en: &str, zh: &str, probability: u8, require: &[&str]| StageForm {
        key: key.to_owned(),
        label: label(en, zh),
        probability,
        require: require.iter().map(|name| (*name).to_owned()).collect(),
        approval: None,
    };
    let mut stages = vec![
        stage("qualification", "Qualification", "初步接洽", 10, &[]),
        stage(
            "needs_analysis",
            "Needs analysis",
            "需求确认",
            30,
            &["budget", "decision_maker"],
        ),
        stage(
            "proposal",
            "Proposal",
            "方案报价",
            60,
            &["amount", "close_date"],
        ),
        stage("negotiation", "Negotiation", "商务谈判", 80, &[]),
        stage("won", "Won", "赢单", 100, &["amount"]),
        stage("lost", "Lost", "输单", 0, &["lost_reason"]),
    ];
    stages[3].approval = Some(ApprovalForm {
        when: "record.discount != () && record.discount > 15".to_owned(),
        steps: vec![
            ApprovalStepForm {
                approvers: vec![ApproverForm::Manager(1)],
                mode: None,
            },
            ApprovalStepForm {
                approvers: vec![ApproverForm::Role("sales_director".to_owned())],
                mode: Some(ApprovalMode::Any),
            },
        ],
    });
    stages
}

#[test]
fn the_stages_form_adds_reorders_and_changes_stages_and_keeps_the_stage_options_equal() {
    let schema = schema();
    let unchanged = save_stages(
        &app_files(),
        &schema,
        "opportunity_sales",
        &opportunity_stages(),
    )
    .unwrap();
    assert!(unchanged.is_empty(), "{unchanged:?}");
    let mut stages = opportunity_stages();
    stages[2].probability = 50;
    stages[1].require.push("amount".to_owned());
    stages.insert(
        3,
        StageForm {
            key: "contract".to_owned(),
            label: label("Contract", "合同审批"),
            probability: 90,
            require: vec!["amount".to_owned()],
            approval: Some(ApprovalForm {
                when: String::new(),
                steps: vec![ApprovalStepForm {
                    approvers: vec![
                        ApproverForm::Manager(2),
                        ApproverForm::Role("sales_director".to_owned()),
                    ],
                    mode: Some(ApprovalMode::All),
                }],
            }),
        },
    );
    stages.swap(4, 3);
    if let Some(approval) = &mut stages[3].approval {
        approval.steps[1].approvers = vec![ApproverForm::User("admin".to_owned())];
    }
    let changes = save_stages(&app_files(), &schema, "opportunity_sales", &stages).unwrap();
    let (loaded, diff) = load_changed(&changes);
    let keys: Vec<&str> = loaded.processes["opportunity_sales"]
        .stages
        .iter()
        .map(|stage| stage.key.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "qualification",
            "needs_analysis",
            "proposal",
            "negotiation",
            "contract",
            "won",
            "lost"
        ]
    );
    insta::assert_snapshot!(diff);
}

#[test]
fn removing_a_stage_removes_its_option_and_its_transitions() {
    let schema = schema();
    let mut stages = opportunity_stages();
    stages.remove(1);
    let changes = save_stages(&app_files(), &schema, "opportunity_sales", &stages).unwrap();
    let (loaded, diff) = load_changed(&changes);
    assert_eq!(loaded.processes["opportunity_sales"].stages.len(), 5);
    insta::assert_snapshot!(diff);
}

#[test]
fn a_rule_form_changes_the_schedule_filter_and_action() {
    let schema = schema();
    let form = RuleForm {
        trigger: RuleTriggerForm::Schedule {
            cron: "0 30 8 * * MON-FRI".to_owned(),
            misfire: Some(Misfire::Skip),
        },
        filter: Some(json!({ "done": false, "due_at": { "lte": "@today" } })),
        actions: vec![json!({
            "notify": "owner",
            "message": {
                "en": "Follow-up due: {{ record.subject }} ({{ record.due_at }})",
                "zh": "今天需要跟进：{{ record.subject }}（{{ record.due_at }}）",
            },
        })],
    };
    let changes = save_rule(&app_files(), &schema, "follow_up_reminder", &form).unwrap();
    let (loaded, diff) = load_changed(&changes);
    assert!(matches!(
        loaded.rules["follow_up_reminder"].trigger,
        crate::model::RuleTrigger::Schedule {
            misfire: Misfire::Skip,
            ..
        }
    ));
    insta::assert_snapshot!(diff);
    let mut bad = form.clone();
    bad.trigger = RuleTriggerForm::Schedule {
        cron: "every day".to_owned(),
        misfire: None,
    };
    let error = save_rule(&app_files(), &schema, "follow_up_reminder", &bad).unwrap_err();
    assert_eq!(error.field, "trigger/cron");
}

#[test]
fn an_event_rule_becomes_a_scheduled_one_with_several_actions() {
    let schema = schema();
    let form = RuleForm {
        trigger: RuleTriggerForm::Schedule {
            cron: "0 0 * * * *".to_owned(),
            misfire: None,
        },
        filter: Some(json!({ "amount": { "gt": 1000000 } })),
        actions: vec![
            json!({ "script": "big_deal_alert" }),
            json!({ "notify": "manager", "message": { "en": "A big deal", "zh": "大单" } }),
        ],
    };
    let changes = save_rule(&app_files(), &schema, "big_deal_alert", &form).unwrap();
    let (_, diff) = load_changed(&changes);
    insta::assert_snapshot!(diff);
}

#[test]
fn a_grant_changes_one_cell_of_the_permission_matrix() {
    let schema = schema();
    let files = app_files();
    let mut changes = set_grant(
        &files,
        &schema,
        "sales_rep",
        "lead",
        GrantAction::Delete,
        GrantValue::Scope(Scope::Own),
    )
    .unwrap();
    let mut files = files;
    files.extend(changes.clone());
    for (role, object, action, value) in [
        (
            "sales_rep",
            "opportunity",
            GrantAction::Edit,
            GrantValue::Scope(Scope::Subordinates),
        ),
        (
            "sales_rep",
            "opportunity",
            GrantAction::Unmask,
            GrantValue::Allowed(true),
        ),
        (
            "service_agent",
            "ticket",
            GrantAction::Unmask,
            GrantValue::Allowed(false),
        ),
    ] {
        let more = set_grant(&files, &schema, role, object, action, value).unwrap();
        files.extend(more.clone());
        changes.extend(more);
    }
    let (loaded, diff) = load_changed(&changes);
    let grant = &loaded.roles.permissions["sales_rep"]["opportunity"];
    assert_eq!(grant.edit, Scope::Subordinates);
    assert!(grant.unmask);
    assert_eq!(
        loaded.roles.permissions["sales_rep"]["lead"].delete,
        Scope::Own
    );
    insta::assert_snapshot!(diff);
    let error = set_grant(
        &files,
        &schema,
        "sales_rep",
        "lead",
        GrantAction::Create,
        GrantValue::Scope(Scope::All),
    )
    .unwrap_err();
    assert_eq!(error.field, "value");
}

#[test]
fn a_field_access_is_set_and_removed_in_the_role_s_grant() {
    let schema = schema();
    let files = app_files();
    let mut changes = set_field_access(
        &files,
        &schema,
        "sales_rep",
        "lead",
        "score",
        Some(FieldAccess::Read),
    )
    .unwrap();
    let mut files = files;
    files.extend(changes.clone());
    for (field, access) in [("discount", None), ("cost", None)] {
        let more =
            set_field_access(&files, &schema, "sales_rep", "opportunity", field, access).unwrap();
        files.extend(more.clone());
        changes.extend(more);
    }
    let (loaded, diff) = load_changed(&changes);
    assert_eq!(
        loaded.roles.permissions["sales_rep"]["lead"].fields["score"],
        FieldAccess::Read
    );
    assert!(
        loaded.roles.permissions["sales_rep"]["opportunity"]
            .fields
            .is_empty()
    );
    insta::assert_snapshot!(diff);
    let error =
        set_field_access(&files, &schema, "sales_rep", "lead", "nothing", None).unwrap_err();
    assert_eq!(error.field, "field");
}

#[test]
fn every_form_read_from_the_files_and_saved_unchanged_changes_no_file() {
    let mut apps = vec![app_root()];
    for template in std::fs::read_dir(app_root().join("templates")).unwrap() {
        apps.push(template.unwrap().path());
    }
    assert!(apps.len() > 1, "the templates are missing");
    for root in apps {
        let files = files_of_app(&root);
        let schema = load_app(&root).unwrap();
        let mut checked = 0;
        for (object, known) in &schema.objects {
            for field in known.fields.keys() {
                let form = field_form(&files, object, field).unwrap();
                let changes = save_field(&files, &schema, object, &form).unwrap();
                assert!(changes.is_empty(), "{object}.{field}: {changes:?}");
                checked += 1;
            }
            let form = list_settings_form(&files, object).unwrap();
            let changes = save_list_settings(&files, &schema, object, &form).unwrap();
            assert!(changes.is_empty(), "{object}: {changes:?}");
        }
        for pool in schema.pools.keys() {
            let form = pool_form(&files, &schema, pool).unwrap();
            let changes = save_pool(&files, &schema, pool, &form).unwrap();
            assert!(changes.is_empty(), "{pool}: {changes:?}");
        }
        for process in schema.processes.keys() {
            let stages = stage_forms(&files, process).unwrap();
            let changes = save_stages(&files, &schema, process, &stages).unwrap();
            assert!(changes.is_empty(), "{process}: {changes:?}");
        }
        for rule in schema.rules.keys() {
            let form = rule_form(&files, rule).unwrap();
            let changes = save_rule(&files, &schema, rule, &form).unwrap();
            assert!(changes.is_empty(), "{rule}: {changes:?}");
        }
        assert!(checked > 20, "{}: {checked} fields", root.display());
    }
}

#[test]
fn a_form_read_from_the_files_and_changed_changes_only_that() {
    let schema = schema();
    let files = app_files();
    let mut form = field_form(&files, "opportunity", "stage").unwrap();
    form.help.zh = "由销售流程推进".to_owned();
    let changes = save_field(&files, &schema, "opportunity", &form).unwrap();
    let (_, diff) = load_changed(&changes);
    insta::assert_snapshot!(diff);
    let mut stages = stage_forms(&files, "opportunity_sales").unwrap();
    stages.swap(0, 1);
    let changes = save_stages(&files, &schema, "opportunity_sales", &stages).unwrap();
    let (loaded, diff) = load_changed(&changes);
    assert_eq!(
        loaded.processes["opportunity_sales"].stages[0].key,
        "needs_analysis"
    );
    insta::assert_snapshot!("stages_swapped", diff);
}
