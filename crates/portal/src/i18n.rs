//! The portal's two languages, English and Traditional Chinese: a small
//! message table, chosen by the `lang` cookie (set by the switch link on
//! every page) or else by `Accept-Language`.

use axum::http::{header, HeaderMap};

/// The cookie the language switch sets.
pub const COOKIE: &str = "peerdial_lang";

/// Every text a page shows, in one language.
pub struct Msg {
    /// The `lang` attribute and the switch link's code.
    pub code: &'static str,
    /// The other language: its code and its name, for the switch link.
    pub other_code: &'static str,
    pub other_name: &'static str,
    pub yellow_pages: &'static str,
    pub search: &'static str,
    pub keywords: &'static str,
    pub no_results: &'static str,
    pub number: &'static str,
    pub password: &'static str,
    pub sign_in: &'static str,
    pub sign_out: &'static str,
    pub profile: &'static str,
    pub save: &'static str,
    pub saved: &'static str,
    pub public: &'static str,
    pub listed: &'static str,
    pub fields: [&'static str; 5],
    pub wrong_password: &'static str,
    pub bad_number: &'static str,
    pub too_many_number: &'static str,
    pub too_many_address: &'static str,
    pub minutes: &'static str,
    pub csrf_refused: &'static str,
    pub too_long: &'static str,
    pub first_password: &'static str,
    pub error: &'static str,
    pub signed_in_as: &'static str,
}

pub static EN: Msg = Msg {
    code: "en",
    other_code: "zh-Hant",
    other_name: "中文",
    yellow_pages: "Yellow pages",
    search: "Search",
    keywords: "Keywords",
    no_results: "Nobody found.",
    number: "Number",
    password: "Password",
    sign_in: "Sign in",
    sign_out: "Sign out",
    profile: "Profile",
    save: "Save",
    saved: "Saved.",
    public: "public",
    listed: "List me in the yellow pages",
    fields: ["Display name", "City", "Organisation", "Interests", "Self-introduction"],
    wrong_password: "Wrong number or password.",
    bad_number: "That is not a number of this area.",
    too_many_number: "Too many wrong passwords for this number. Try again in",
    too_many_address: "Too many wrong passwords from your address. Try again in",
    minutes: "minutes.",
    csrf_refused: "This form is out of date or did not come from this site (its security token is missing or wrong). Nothing was changed; reload the page and try again.",
    too_long: "A field is too long; nothing was changed.",
    first_password: "No password yet? Set one from your phone: POST /api/v1/account/password with your SIP credentials.",
    error: "Error",
    signed_in_as: "Signed in as",
};

pub static ZH: Msg = Msg {
    code: "zh-Hant",
    other_code: "en",
    other_name: "English",
    yellow_pages: "黃頁",
    search: "搜尋",
    keywords: "關鍵字",
    no_results: "找不到任何人。",
    number: "號碼",
    password: "密碼",
    sign_in: "登入",
    sign_out: "登出",
    profile: "個人資料",
    save: "儲存",
    saved: "已儲存。",
    public: "公開",
    listed: "將我列入黃頁",
    fields: ["顯示名稱", "城市", "組織", "興趣", "自我介紹"],
    wrong_password: "號碼或密碼錯誤。",
    bad_number: "這不是本區的號碼。",
    too_many_number: "此號碼的密碼錯誤次數過多。請於",
    too_many_address: "您的位址密碼錯誤次數過多。請於",
    minutes: "分鐘後再試。",
    csrf_refused: "此表單已過期或並非來自本站（安全權杖遺失或錯誤）。未做任何變更；請重新載入頁面後再試。",
    too_long: "有欄位過長；未做任何變更。",
    first_password: "還沒有密碼？請從您的電話設定：以 SIP 帳密呼叫 POST /api/v1/account/password。",
    error: "錯誤",
    signed_in_as: "已登入：",
};

/// The table for a language code (`en`, `zh-Hant`, `zh-TW`, `zh`…).
pub fn by_code(code: &str) -> Option<&'static Msg> {
    let code = code.trim().to_ascii_lowercase();
    if code == "en" || code.starts_with("en-") {
        Some(&EN)
    } else if code == "zh" || code.starts_with("zh-") {
        Some(&ZH)
    } else {
        None
    }
}

/// The language of a request: the switch's cookie, else the first
/// `Accept-Language` entry (by weight) we have, else English.
pub fn choose(headers: &HeaderMap) -> &'static Msg {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('=').and_then(by_code));
    if let Some(m) = cookie {
        return m;
    }
    let mut wanted: Vec<(f32, &'static Msg)> = headers
        .get_all(header::ACCEPT_LANGUAGE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|item| {
            let mut parts = item.split(';');
            let msg = by_code(parts.next()?)?;
            let q = parts.find_map(|p| p.trim().strip_prefix("q=")?.parse::<f32>().ok()).unwrap_or(1.0);
            (q > 0.0).then_some((q, msg))
        })
        .collect();
    // Stable: equal weights keep the header's order.
    wanted.sort_by(|a, b| b.0.total_cmp(&a.0));
    wanted.first().map_or(&EN, |w| w.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(h: &[(&'static str, &str)]) -> &'static str {
        let mut m = HeaderMap::new();
        for (k, v) in h {
            m.append(*k, v.parse().unwrap());
        }
        choose(&m).code
    }

    #[test]
    fn cookie_then_accept_language_then_english() {
        assert_eq!(pick(&[]), "en");
        assert_eq!(pick(&[("accept-language", "zh-TW,zh;q=0.9,en;q=0.8")]), "zh-Hant");
        assert_eq!(pick(&[("accept-language", "fr, en;q=0.5, zh-Hant;q=0.7")]), "zh-Hant");
        assert_eq!(pick(&[("accept-language", "de")]), "en");
        assert_eq!(pick(&[("accept-language", "zh;q=0")]), "en");
        assert_eq!(pick(&[("accept-language", "zh-TW"), ("cookie", "a=b; peerdial_lang=en")]), "en");
    }
}
