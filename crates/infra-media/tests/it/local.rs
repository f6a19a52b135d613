use domain::media::{ImageFormat, MediaName, MediaStore};
use infra_media::{LocalMediaStore, MediaTarget};

fn scratch(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "botshop-media-{test}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn a_picture_is_read_back_as_stored_and_stored_once() {
    let dir = scratch("roundtrip");
    let store = LocalMediaStore::open(dir.join("nested")).await.unwrap();
    let name = MediaName::of(b"picture", ImageFormat::Webp);
    assert_eq!(store.get(&name).await.unwrap(), None);
    store.put(&name, b"picture".to_vec()).await.unwrap();
    store.put(&name, b"picture".to_vec()).await.unwrap();
    assert_eq!(store.get(&name).await.unwrap().unwrap().bytes, b"picture");
    let files: Vec<_> = std::fs::read_dir(dir.join("nested"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, vec![name.to_string()], "no temporary files left");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn open_checks_that_the_directory_can_be_written() {
    let dir = scratch("unwritable");
    std::fs::create_dir_all(&dir).unwrap();
    // A file where the directory should be: neither root nor anyone can write into it.
    let file = dir.join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    let result = infra_media::open(&MediaTarget::Local(file.clone())).await;
    assert!(result.is_err());
    let store = infra_media::open(&MediaTarget::Local(dir.join("media"))).await;
    assert!(store.is_ok());
    std::fs::remove_dir_all(dir).unwrap();
}
