//! A sample Test Studio project shaped like the real thing, for the demo
//! and the tests. Written for keyturn from the measured description of real
//! projects (no third-party project file is copied):
//!
//! - `Settings.aiis`, `.tstest` and `.aiilist` are JSON
//!   (`{"__type": "...", "__value": {...}}`), UTF-8 without a byte-order
//!   mark, CRLF (one test LF, as git normalises them);
//! - password steps are `SetTextActionDescriptor`s: one encrypted by Test
//!   Studio itself (`Encrypt` true, `RawText` empty, a 24-character `_cipher`
//!   with a masked description), one whose `RawText` is a keyturn token, and
//!   one stored in plain text (`IsPassword` true, `Encrypt` false);
//! - a data-driven test's `DataInfo` with a connection string (its password
//!   a keyturn token) and one bound to `Data.xlsx`, `Sheet1$`;
//! - a `.resx` and the `.csproj` in UTF-8 with a byte-order mark;
//! - a step with an embedded image: one line of about 270 KB of base64;
//! - `Data/Data.xlsx`, a workbook with a token as a shared string and one as
//!   an inline string; `Elements/*.imgstore`, a zip and a raw binary file.

use std::fs;
use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// The plain-text password the sample stores unencrypted (a finding).
pub const PLAINTEXT_PASSWORD: &str = "Sunsh1ne-plain";
/// The plain-text `TpPassword` of the sample's `Settings.aiis`.
pub const PLAINTEXT_SETTING: &str = "tp-plain-S3cret";
/// Test Studio's own ciphertext in the sample (24 base64 characters, one
/// AES block): keyturn cannot open it.
pub const TEST_STUDIO_CIPHER: &str = "Zm9vYmFyYmF6cXV4MTIzNA==";
/// The values the sample seals as keyturn tokens.
pub const SEALED: [&str; 6] = ["Tr0ub4dor&3", "s3cr3t-db", "4711", "qc-pass", "xlsx-db-pass", "inline-pin"];
/// The length of the embedded image's line.
pub const IMAGE_LINE: usize = 270_000;

/// Writes the sample project into `root` (created if missing); `seal` turns
/// a value into a keyturn token. Returns the files written, relative.
pub fn write(root: &Path, seal: &dyn Fn(&[u8]) -> String) -> io::Result<Vec<PathBuf>> {
    let [login_pw, db_pw, pin, qc, xlsx_db, inline_pin] = SEALED.map(|v| seal(v.as_bytes()));
    let mut files = Vec::new();
    let mut put = |rel: &str, bytes: &[u8]| -> io::Result<()> {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::write(&path, bytes)?;
        files.push(PathBuf::from(rel));
        Ok(())
    };
    let crlf = |text: &str| text.replace('\n', "\r\n");
    put(
        "Settings.aiis",
        crlf(&format!(
            r#"{{
  "__type": "ArtOfTest.WebAii.Design.ProjectModel.ProjectSettings",
  "__value": {{
    "ProjectName": "Checkout",
    "QcServerUrl": "https://qc.example.test/qcbin",
    "QcUser": "qa-bot",
    "QcPassword": "{qc}",
    "TfsServer": "",
    "TfsPassword": "",
    "TpUser": "qa-bot",
    "TpPassword": "{PLAINTEXT_SETTING}"
  }}
}}
"#
        ))
        .as_bytes(),
    )?;
    put("Tests/Login.tstest", crlf(&login_test(&login_pw, &db_pw)).as_bytes())?;
    put("Tests/Checkout.tstest", checkout_test(&pin).as_bytes())?;
    put(
        "Lists/Smoke.aiilist",
        crlf(
            r#"{
  "__type": "ArtOfTest.WebAii.Design.ProjectModel.TestList",
  "__value": {
    "Name": "Smoke",
    "Tests": [ "Tests\\Login.tstest", "Tests\\Checkout.tstest" ]
  }
}
"#,
        )
        .as_bytes(),
    )?;
    let mut resx = b"\xEF\xBB\xBF".to_vec();
    resx.extend_from_slice(
        crlf(&format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<root>
  <resheader name="resmimetype">
    <value>text/microsoft-resx</value>
  </resheader>
  <data name="LoginPassword" xml:space="preserve">
    <value>{login_pw}</value>
  </data>
  <data name="Greeting" xml:space="preserve">
    <value>Grüß Gott — Überprüfung</value>
  </data>
</root>
"#
        ))
        .as_bytes(),
    );
    put("Pages/Login.resx", &resx)?;
    let mut csproj = b"\xEF\xBB\xBF".to_vec();
    csproj.extend_from_slice(
        crlf(
            r#"<?xml version="1.0" encoding="utf-8"?>
<Project ToolsVersion="15.0" xmlns="http://schemas.microsoft.com/developer/msbuild/2003">
  <ItemGroup>
    <Content Include="Data\Data.xlsx" />
  </ItemGroup>
</Project>
"#,
        )
        .as_bytes(),
    );
    put("Checkout.csproj", &csproj)?;
    put("Data/Data.xlsx", &workbook(&xlsx_db, &inline_pin)?)?;
    put("Elements/Login.imgstore", &image_store()?)?;
    // An image store that is not a zip: raw binary with NUL bytes.
    let raw: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    put("Elements/Legacy.imgstore", &raw)?;
    Ok(files)
}

/// Deterministic bytes that look random, as an image's base64 does.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

fn set_text_step(description: &str, raw: &str, encrypt: bool, cipher: &str, element: &str) -> String {
    format!(
        r#"        {{
          "__type": "ArtOfTest.WebAii.Design.ProjectModel.AutomationStep",
          "__value": {{
            "Runtime ID": "{element}-set-text",
            "Description": "{description}",
            "CustomDescription": "",
            "Enabled": true,
            "Step": {{
              "__type": "ArtOfTest.WebAii.Design.IntrinsicTranslators.Descriptors.SetTextActionDescriptor",
              "__value": {{
                "RawText": "{raw}",
                "IsPassword": true,
                "Encrypt": {encrypt},
                "_canEncrypt": true,
                "_cipher": "{cipher}",
                "SimulateRealTyping": false,
                "Target": "{element}"
              }}
            }}
          }}
        }}"#
    )
}

fn login_test(login_pw: &str, db_pw: &str) -> String {
    let steps = [
        set_text_step("Enter text '*****' in 'Password'", "", true, TEST_STUDIO_CIPHER, "PasswordText"),
        set_text_step("Enter text in 'AdminPassword'", login_pw, false, "", "AdminPasswordText"),
        set_text_step(&format!("Enter text '{PLAINTEXT_PASSWORD}' in 'Pin'"), PLAINTEXT_PASSWORD, false, "", "PinText"),
    ]
    .join(",\n");
    format!(
        r#"{{
  "__type": "ArtOfTest.WebAii.Design.ProjectModel.Test",
  "__value": {{
    "Title": "Login",
    "Owner": "qa",
    "UniqueId": "6f1c2a90-3b1d-4c55-9d61-0b8e5c1f7a11",
    "DataInfo": {{
      "__type": "ArtOfTest.Common.Design.Data.DataInfo",
      "__value": {{
        "ConnectionString": "Server=db01;Database=Orders;User Id=qa;Password={db_pw};",
        "DataProvider": "System.Data.SqlClient",
        "DataTableName": "Customers",
        "DataRange": ""
      }}
    }},
    "Steps": {{
      "__type": "ArtOfTest.WebAii.Design.ProjectModel.AutomationStepList",
      "__value": [
{steps}
      ]
    }}
  }}
}}
"#
    )
}

fn checkout_test(pin: &str) -> String {
    let image = base64::engine::general_purpose::STANDARD.encode(noise(IMAGE_LINE / 4 * 3));
    let pin_step = set_text_step("Enter text in 'CardPin'", pin, false, "", "CardPinText");
    format!(
        r#"{{
  "__type": "ArtOfTest.WebAii.Design.ProjectModel.Test",
  "__value": {{
    "Title": "Checkout — Überprüfung",
    "Owner": "qa",
    "DataInfo": {{
      "__type": "ArtOfTest.Common.Design.Data.DataInfo",
      "__value": {{
        "ConnectionString": "",
        "DataProvider": "Data.xlsx",
        "DataTableName": "Sheet1$",
        "DataRange": ""
      }}
    }},
    "Steps": {{
      "__type": "ArtOfTest.WebAii.Design.ProjectModel.AutomationStepList",
      "__value": [
{pin_step},
        {{
          "__type": "ArtOfTest.WebAii.Design.ProjectModel.AutomationStep",
          "__value": {{
            "Description": "Verify image of 'CartSummary'",
            "CustomDescription": "",
            "Step": {{
              "__type": "ArtOfTest.WebAii.Design.IntrinsicTranslators.Descriptors.VerifyImageDescriptor",
              "__value": {{
                "ImageData": "{image}"
              }}
            }}
          }}
        }}
      ]
    }}
  }}
}}
"#
    )
}

fn deflated() -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::from_date_and_time(2024, 3, 1, 9, 30, 0).unwrap_or_default())
}

fn zip_of(entries: &[(&str, &[u8], SimpleFileOptions)]) -> io::Result<Vec<u8>> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, content, options) in entries {
        writer.start_file(*name, *options).map_err(io::Error::other)?;
        writer.write_all(content)?;
    }
    Ok(writer.finish().map_err(io::Error::other)?.into_inner())
}

/// A minimal workbook: one sheet, a connection string as a shared string
/// and a PIN as an inline string, both with tokens.
fn workbook(db: &str, pin: &str) -> io::Result<Vec<u8>> {
    let content_types = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>"#;
    let rels = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
    let book = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#;
    let book_rels = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#;
    let sheet = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row><row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2" t="inlineStr"><is><t>{pin}</t></is></c></row></sheetData></worksheet>"#
    );
    let shared = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="3" uniqueCount="3"><si><t>customer</t></si><si><t>pin</t></si><si><t>Server=db02;User Id=qa;Password={db};</t></si></sst>"#
    );
    let stored = deflated().compression_method(CompressionMethod::Stored);
    zip_of(&[
        ("[Content_Types].xml", content_types.as_bytes(), deflated()),
        ("_rels/.rels", rels.as_bytes(), deflated()),
        ("xl/workbook.xml", book.as_bytes(), deflated()),
        ("xl/_rels/workbook.xml.rels", book_rels.as_bytes(), deflated()),
        ("xl/worksheets/sheet1.xml", sheet.as_bytes(), deflated()),
        ("xl/sharedStrings.xml", shared.as_bytes(), deflated()),
        ("docProps/thumbnail.bin", &noise(2048), stored),
    ])
}

/// An image store: a zip of element images and their index.
fn image_store() -> io::Result<Vec<u8>> {
    let index = r#"{"__type":"ImageStore","__value":{"Images":["PasswordText.png","PinText.png"]}}"#;
    zip_of(&[
        ("index.json", index.as_bytes(), deflated()),
        ("PasswordText.png", &noise(3000), deflated()),
        ("PinText.png", &noise(2500), deflated()),
    ])
}
