use crate::helpers::{Issue, spawn_app};

#[tokio::test]
async fn healthz_answers_200() {
    let app = spawn_app().await;

    let response = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn readyz_reports_the_database_and_the_loaded_view() {
    let app = spawn_app().await;
    app.issue(Issue::default()).await;

    let response = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    assert_eq!(body["view"], "loaded");
    assert_eq!(body["keys"], 1);
}
