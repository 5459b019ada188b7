//! Issue 15: streamed panel calls (time to first token, idle cuts, live
//! deltas), the straggler cutoff, and the routes that skip the panel.
use super::*;

/// An OpenAI chunk with `text`.
fn chunk(text: &str) -> Piece {
    data(&format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}}}}]}}\n\n", serde_json::to_string(text).unwrap()))
}

fn end() -> Piece {
    data("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\ndata: [DONE]\n\n")
}

#[test]
fn a_streamed_member_reports_its_time_to_first_token_and_its_whole_answer() {
    let fake = Fake::default().stream("a", &[Piece::Pause(200.0), chunk("Hel"), Piece::Pause(300.0), chunk("lo"), end()]);
    let answer = run(&fake, &ensemble(&["a"], &["s"])).unwrap();
    let a = &answer.meta.panel[0];
    assert_eq!(a.status, MemberStatus::Ok);
    let ttft = a.ttft_ms.unwrap();
    assert!((195..=260).contains(&ttft), "ttft {ttft}");
    assert!(a.latency_ms >= 495, "latency {} is to the last chunk", a.latency_ms);
    assert_eq!(a.usage.unwrap().total_tokens, 5);
    // The summary model sees the whole answer.
    let system = fake.bodies_of("s")[0]["messages"][0]["content"].as_str().unwrap().to_owned();
    assert!(system.contains("<answer id=\"1\">\nHello\n</answer>"), "{system}");
    // Panel calls are streamed, usage asked for.
    let body = &fake.bodies_of("a")[0];
    assert_eq!((body["stream"].as_bool(), body["stream_options"]["include_usage"].as_bool()), (Some(true), Some(true)));
}

#[test]
fn a_member_that_stops_sending_mid_stream_is_cut_by_its_idle_timeout_and_the_rest_proceed() {
    let fake = Fake::default().stream("a", &[chunk("partial"), Piece::Stall]);
    let answer = run(&fake, &ensemble(&["a", "b"], &["s"])).unwrap();
    let a = &answer.meta.panel[0];
    assert_eq!(a.status, MemberStatus::Timeout);
    assert!(a.error.as_ref().unwrap().reason.contains("sent nothing for 10000 ms"), "{:?}", a.error);
    assert!(a.ttft_ms.is_some(), "it had started: stuck, not slow");
    assert_eq!(answer.meta.panel[1].status, MemberStatus::Ok);
    assert_eq!(answer.meta.summary.model, "s");
    // Cut at its idle timeout (10 s after its last chunk), not at the request ceiling.
    assert!(fake.now() < 11_000.0, "{}", fake.now());
}

#[test]
fn panel_deltas_arrive_before_the_member_is_done_coalesced_to_one_per_100_ms() {
    let mut pieces = Vec::new();
    for i in 0..30 {
        pieces.push(chunk(&format!("w{i} ")));
        pieces.push(Piece::Pause(10.0));
    }
    pieces.push(end());
    let fake = Fake::default().stream("a", &pieces).stream("s", &[data(GOOD_STREAM)]);
    let mut sink = VecSink::new();
    stream_with(&fake, &ensemble(&["a"], &["s"]), &request(true), &mut sink, true);
    let progress: Vec<Value> = sink.json().into_iter().filter_map(|v| v.get("n1_progress").cloned()).collect();
    let deltas: Vec<&Value> = progress.iter().filter(|p| p["type"] == "panel_delta").collect();
    let text: String = deltas.iter().map(|d| d["content"].as_str().unwrap()).collect();
    assert_eq!(text, (0..30).map(|i| format!("w{i} ")).collect::<String>());
    // 300 virtual ms of streaming: a handful of deltas, not thirty.
    assert!((2..=6).contains(&deltas.len()), "{} deltas", deltas.len());
    let member = progress.iter().position(|p| p["type"] == "panel_member").unwrap();
    assert!(progress.iter().position(|p| p["type"] == "panel_delta").unwrap() < member);
    assert!(deltas.iter().all(|d| d["model"] == "a" && d["index"] == 0));
    // Without progress events nothing of it is kept or sent.
    let fake = Fake::default().stream("a", &pieces).stream("s", &[data(GOOD_STREAM)]);
    let sink = run_stream(&fake, &ensemble(&["a"], &["s"]));
    assert!(!sink.text().contains("panel_delta"));
}

#[test]
fn stragglers_are_cut_relative_to_the_min_panel_th_answer() {
    let fake = Fake::default().script("a", &[Step::Slow(300.0)]).script("b", &[Step::Slow(400.0)]).script("c", &[Step::Slow(8000.0)]);
    let ens = ensemble_with(&["a", "b", "c"], &["s"], json!({"min_panel": 2, "straggler": {"factor": 2, "min_ms": 0}}));
    let answer = run(&fake, &ens).unwrap();
    assert_eq!(answer.meta.panel_end, PanelEnd::Straggler);
    let c = &answer.meta.panel[2];
    assert_eq!(c.status, MemberStatus::Cancelled);
    assert!(c.error.as_ref().unwrap().reason.contains("straggler"), "{:?}", c.error);
    assert_eq!(answer.meta.panel_ok, 2);
    assert!(fake.aborts.get() >= 1, "the straggler's request is aborted");
    // The second answer came at ~400 ms: the cutoff is ~800 ms, not 8 s.
    let at = fake.now();
    assert!((780.0..1_000.0).contains(&at), "the synthesis started at {at}");
}

#[test]
fn the_straggler_wait_is_at_least_min_ms_and_off_by_default() {
    let fake = Fake::default().script("a", &[Step::Slow(300.0)]).script("b", &[Step::Slow(400.0)]).script("c", &[Step::Slow(3000.0)]);
    let ens = ensemble_with(&["a", "b", "c"], &["s"], json!({"min_panel": 2, "straggler": {"factor": 2, "min_ms": 5000}}));
    let answer = run(&fake, &ens).unwrap();
    assert_eq!(answer.meta.panel_end, PanelEnd::All, "c answered within min_ms");
    assert_eq!(answer.meta.panel_ok, 3);
    let fake = Fake::default().script("a", &[Step::Slow(300.0)]).script("c", &[Step::Slow(8000.0)]);
    let answer = run(&fake, &ensemble_with(&["a", "c"], &["s"], json!({}))).unwrap();
    assert_eq!(answer.meta.panel_end, PanelEnd::All);
    assert_eq!(answer.meta.panel_ok, 2);
}

fn route_of(ens: &Ensemble, body: Value) -> Route {
    super::super::route(ens, &decode(body))
}

#[test]
fn routes_tool_turns_background_tasks_and_explicit_requests() {
    let ens = ensemble(&["a"], &["s"]);
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    let user = |t: &str| json!({"role": "user", "content": t});
    let call = json!({"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]});
    let result = json!({"role": "tool", "tool_call_id": "c", "content": "42"});
    // auto (the default): a tool result last skips the panel; a first turn with tools does not.
    assert_eq!(route_of(&ens, json!({"messages": [user("q"), call, result], "tools": tools})), Route::Summary);
    assert_eq!(route_of(&ens, json!({"messages": [user("q")], "tools": tools})), Route::Ensemble);
    assert_eq!(route_of(&ens, json!({"messages": [user("q"), call, result, json!({"role": "assistant", "content": "42"}), user("and?")], "tools": tools})), Route::Ensemble);
    let summary = ensemble_with(&["a"], &["s"], json!({"tool_turns": "summary"}));
    assert_eq!(route_of(&summary, json!({"messages": [user("q")], "tools": tools})), Route::Summary);
    assert_eq!(route_of(&summary, json!({"messages": [user("q")]})), Route::Ensemble);
    let always = ensemble_with(&["a"], &["s"], json!({"tool_turns": "ensemble"}));
    assert_eq!(route_of(&always, json!({"messages": [user("q"), call, result], "tools": tools})), Route::Ensemble);
    // Background tasks: Open WebUI's title prompt (any case), LibreChat's in a system message.
    let title = "### Task:\nGenerate a concise, 3-5 word title with an emoji summarizing the chat history.\n<chat_history>\nUSER: hi\n</chat_history>";
    assert_eq!(route_of(&ens, json!({"messages": [user(title)]})), Route::Task);
    assert_eq!(route_of(&ens, json!({"messages": [user(&title.to_uppercase())]})), Route::Task);
    let libre = json!({"role": "system", "content": "Please generate a concise, 5-word-or-less title for the conversation, using its same language, with no punctuation."});
    assert_eq!(route_of(&ens, json!({"messages": [libre, user("hi")]})), Route::Task);
    assert_eq!(route_of(&ens, json!({"messages": [user("What is a good title for my essay?")]})), Route::Ensemble);
    let custom = ensemble_with(&["a"], &["s"], json!({"task_markers": ["[BG]"]}));
    assert_eq!(route_of(&custom, json!({"messages": [user("[bg] summarize")]})), Route::Task);
    assert_eq!(route_of(&custom, json!({"messages": [user(title)]})), Route::Ensemble, "custom markers replace the defaults");
    // Explicit.
    assert_eq!(route_of(&ens, json!({"messages": [user("q")], "n1": {"direct": true}})), Route::Direct);
}

#[test]
fn off_the_ensemble_route_one_model_answers_the_conversation_as_it_is() {
    let ens = ensemble_of(vec![model("a"), model("b")], vec![model("s")], json!({"task_model": model("cheap")}));
    let fake = Fake::default();
    let req = decode(json!({"messages": [{"role": "user", "content": "### Task:\nSuggest 3-5 relevant follow-up questions or prompts ..."}]}));
    let route = super::super::route(&ens, &req);
    assert_eq!(route, Route::Task);
    let answer = block_on(complete(&fake, &ens.lineup(false, route).unwrap(), &req)).unwrap();
    assert_eq!(answer.meta.route, Route::Task);
    assert_eq!(answer.meta.summary.model, "cheap");
    assert!(answer.meta.panel.is_empty());
    assert!(!fake.called("a") && !fake.called("b") && !fake.called("s"));
    // The task model gets the conversation itself, no synthesis prompt.
    assert_eq!(fake.bodies_of("cheap")[0]["messages"][0]["role"], "user");
    // A tool turn goes to the summary model (the task model is for tasks).
    let tool_turn = ens.lineup(false, Route::Summary).unwrap();
    assert_eq!(tool_turn.summary[0].model, "s");
    assert!(tool_turn.panel.is_empty());
    // Without a task_model, tasks go to the summary model.
    let plain = ensemble(&["a"], &["s"]);
    assert_eq!(plain.lineup(false, Route::Direct).unwrap().summary[0].model, "s");
}
