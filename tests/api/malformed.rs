use crate::helpers::spawn_app;

#[tokio::test]
async fn malformed_input_gets_a_4xx_with_a_json_error_never_a_5xx() {
    let app = spawn_app().await;
    let deep = format!("{{\"tag\": {}1{}}}", "[".repeat(5_000), "]".repeat(5_000));
    let huge = format!(
        "{{\"tag\":\"@acme/a\",\"accessKey\":\"{}\"}}",
        "k".repeat(1024 * 1024)
    );
    let long_key = format!(
        "{{\"tag\":\"@acme/a\",\"accessKey\":\"tb_{}\"}}",
        "a".repeat(600)
    );
    let json = Some("application/json");
    let cases: Vec<(&str, Option<&str>, Vec<u8>, u16)> = vec![
        ("not JSON", json, b"tag=@acme/a".to_vec(), 400),
        (
            "wrong content type",
            Some("text/plain"),
            br#"{"tag":"@acme/a","accessKey":"k"}"#.to_vec(),
            415,
        ),
        (
            "form content type",
            Some("application/x-www-form-urlencoded"),
            b"tag=x".to_vec(),
            415,
        ),
        (
            "no content type",
            None,
            br#"{"tag":"@acme/a","accessKey":"k"}"#.to_vec(),
            415,
        ),
        ("empty body", json, Vec::new(), 400),
        ("an array", json, b"[]".to_vec(), 400),
        ("a string", json, br#""@acme/a""#.to_vec(), 400),
        ("missing tag", json, br#"{"accessKey":"k"}"#.to_vec(), 400),
        (
            "missing accessKey",
            json,
            br#"{"tag":"@acme/a"}"#.to_vec(),
            400,
        ),
        (
            "null accessKey",
            json,
            br#"{"tag":"@acme/a","accessKey":null}"#.to_vec(),
            400,
        ),
        (
            "numeric tag",
            json,
            br#"{"tag":42,"accessKey":"k"}"#.to_vec(),
            400,
        ),
        (
            "object accessKey",
            json,
            br#"{"tag":"@acme/a","accessKey":{"k":1}}"#.to_vec(),
            400,
        ),
        (
            "empty tag",
            json,
            br#"{"tag":"","accessKey":"k"}"#.to_vec(),
            400,
        ),
        (
            "empty accessKey",
            json,
            br#"{"tag":"@acme/a","accessKey":""}"#.to_vec(),
            400,
        ),
        (
            "tag without owner",
            json,
            br#"{"tag":"sdxl","accessKey":"k"}"#.to_vec(),
            400,
        ),
        (
            "emoji key",
            json,
            r#"{"tag":"@acme/a","accessKey":"🦀🔑✨"}"#.as_bytes().to_vec(),
            400,
        ),
        (
            "escaped emoji key",
            json,
            br#"{"tag":"@acme/a","accessKey":"\ud83e\udd80"}"#.to_vec(),
            400,
        ),
        ("key over 512 bytes", json, long_key.into_bytes(), 400),
        (
            "invalid UTF-8",
            json,
            b"{\"tag\":\"@acme/a\",\"accessKey\":\"\xff\xfe\"}".to_vec(),
            400,
        ),
        ("deeply nested junk", json, deep.into_bytes(), 400),
        ("1 MiB body", json, huge.into_bytes(), 413),
    ];
    for (why, content_type, body, expected) in cases {
        let response = app.post_raw(&app.authorize_url(), content_type, body).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, expected, "{why}: {text}");
        let json: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{why}: the error is not JSON: {text}"));
        let message = json["error"].as_str().unwrap_or_default();
        assert!(message.len() > 10, "{why}: no useful message in {text}");
    }
}

#[tokio::test]
async fn a_missing_access_key_says_how_to_get_one() {
    let app = spawn_app().await;

    let response = app
        .post_raw(
            &app.authorize_url(),
            Some("application/json"),
            br#"{"tag":"@acme/sdxl"}"#.to_vec(),
        )
        .await;

    let body: serde_json::Value = response.json().await.unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(message.starts_with("No access key was sent."), "{message}");
    assert!(message.contains("@acme/sdxl"), "{message}");
}

/// What Function's clients send for a key that was never set: Python's `None` (as
/// `Bearer None`), JavaScript's `undefined`, JSON's `null`.
#[tokio::test]
async fn an_unset_key_as_the_clients_send_it_is_answered_as_no_key() {
    let app = spawn_app().await;
    for unset in ["None", "undefined", "null"] {
        let (status, body) = app.authorize_json("@acme/sdxl", unset).await;
        assert_eq!(status, 400);
        let message = body["error"].as_str().unwrap();
        assert!(
            message.starts_with("No access key was sent."),
            "{unset}: {message}"
        );
    }
    let response = app
        .post_raw(
            &app.authorize_url(),
            Some("application/json"),
            br#"{"tag":"@acme/sdxl","accessKey":null}"#.to_vec(),
        )
        .await;
    let body: serde_json::Value = response.json().await.unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(
        message.starts_with("No access key was sent."),
        "JSON null: {message}"
    );
}

#[tokio::test]
async fn a_field_sent_twice_is_named_in_the_message() {
    let app = spawn_app().await;

    let response = app
        .post_raw(
            &app.authorize_url(),
            Some("application/json"),
            br#"{"tag":"@acme/sdxl","accessKey":"a","accessKey":"b"}"#.to_vec(),
        )
        .await;

    assert_eq!(response.status().as_u16(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["error"],
        "The request has accessKey more than once; send it once."
    );
}
