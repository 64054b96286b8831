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
    pub code_expired: &'static str,
    pub code_used: &'static str,
    pub code_wrong: &'static str,
    pub number_disabled: &'static str,
    pub pairing_code: &'static str,
    pub account: &'static str,
    pub current_password: &'static str,
    pub new_password: &'static str,
    pub change_password: &'static str,
    pub password_changed: &'static str,
    pub password_length: &'static str,
    pub friends: &'static str,
    pub add_friend: &'static str,
    pub remove: &'static str,
    pub friend_number: &'static str,
    pub friends_only: &'static str,
    pub no_friends: &'static str,
    pub bad_friend: &'static str,
    pub friend_self: &'static str,
    pub too_many_friends: &'static str,
    pub unknown: &'static str,
    pub presence: &'static str,
    pub greetings: &'static str,
    pub as_caller: &'static str,
    pub as_callee: &'static str,
    pub no_greeting: &'static str,
    pub upload: &'static str,
    pub picture: &'static str,
    pub which: &'static str,
    pub card: &'static str,
    pub card_text: &'static str,
    pub foreground: &'static str,
    pub background: &'static str,
    pub layout: &'static str,
    pub draw: &'static str,
    pub greeting_saved: &'static str,
    pub no_file: &'static str,
    pub vanity: &'static str,
    pub pattern: &'static str,
    pub contains: &'static str,
    pub ends_with: &'static str,
    pub find: &'static str,
    pub bad_pattern: &'static str,
    pub none_free: &'static str,
    pub reserve: &'static str,
    pub reserved: &'static str,
    pub reserved_note: &'static str,
    pub operator: &'static str,
    pub name: &'static str,
    pub numbers: &'static str,
    pub registrations: &'static str,
    pub sessions: &'static str,
    pub disable: &'static str,
    pub enable: &'static str,
    pub disabled_numbers: &'static str,
    pub done: &'static str,
    pub not_in_area: &'static str,
    pub channels: &'static str,
    pub channels_intro: &'static str,
    pub no_channels: &'static str,
    pub subscribe: &'static str,
    pub unsubscribe: &'static str,
    pub subscribed: &'static str,
    pub broadcast: &'static str,
    pub broadcast_text: &'static str,
    pub every_minutes: &'static str,
    pub until_utc: &'static str,
    pub send_broadcast: &'static str,
    pub bad_schedule: &'static str,
    /// The top's yellow pages over every region.
    pub all_regions: &'static str,
    pub country: &'static str,
    pub area_code: &'static str,
    pub regions: &'static str,
    pub region_answered: &'static str,
    pub region_silent: &'static str,
    pub dialer: &'static str,
    /// Sign-in at the top, delegated to the number's region.
    pub top_signin_note: &'static str,
    pub no_region: &'static str,
    pub region_unreachable: &'static str,
    pub my_region: &'static str,
    pub talkers: &'static str,
    pub no_talkers: &'static str,
    /// Region refusals; `{n}` is the number.
    pub number_taken: &'static str,
    pub number_outside: &'static str,
    pub number_yours: &'static str,
    pub region_busy: &'static str,
    pub operator_sessions: &'static str,
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
    code_expired: "That pairing code has expired (codes last 5 minutes). Type `pair` on your phone for a new one.",
    code_used: "That pairing code was already used (each code works once). Type `pair` on your phone for a new one.",
    code_wrong: "Wrong number or pairing code.",
    number_disabled: "This number is disabled by the operator.",
    pairing_code: "Or a pairing code (type `pair` on your phone)",
    account: "Account",
    current_password: "Current password",
    new_password: "New password (8 to 128 characters)",
    change_password: "Change password",
    password_changed: "Password changed. Your other sessions were signed out.",
    password_length: "A password has 8 to 128 characters; nothing was changed.",
    friends: "Friends",
    add_friend: "Add a friend",
    remove: "Remove",
    friend_number: "Friend's number (13 digits, any region)",
    friends_only: "Only my friends see my presence",
    no_friends: "No friends yet.",
    bad_friend: "That is not a number: a number has 13 digits, like 886-2-12345678.",
    friend_self: "You cannot be your own friend.",
    too_many_friends: "Too many friends (at most 1000).",
    unknown: "unknown",
    presence: "Presence",
    greetings: "Greetings",
    as_caller: "As caller",
    as_callee: "As callee",
    no_greeting: "None yet.",
    upload: "Upload",
    picture: "Picture (PNG, JPEG, GIF or WebP, at most 1 MiB)",
    which: "Which greeting",
    card: "Compose a card from text",
    card_text: "Text",
    foreground: "Text colour",
    background: "Background",
    layout: "Layout",
    draw: "Draw",
    greeting_saved: "Greeting saved.",
    no_file: "Choose a picture to upload.",
    vanity: "Choose a number",
    pattern: "Digits to look for",
    contains: "contains",
    ends_with: "ends with",
    find: "Find free numbers",
    bad_pattern: "A pattern is 1 to 8 digits (0-9 only).",
    none_free: "No free number matches.",
    reserve: "Take this number",
    reserved: "Your number is now",
    reserved_note: "Your phone picks it up at its next connection with the region; the old number stops resolving now.",
    operator: "Operator",
    name: "Name",
    numbers: "Numbers",
    registrations: "Registrations",
    sessions: "Signed-in sessions",
    disable: "Disable",
    enable: "Enable",
    disabled_numbers: "Disabled numbers",
    done: "Done.",
    not_in_area: "That is not a provisioned number of this area.",
    channels: "Channels",
    channels_intro: "Your phone's marquee shows one item at a time from the channels you subscribe to, after anything your friends post to you.",
    no_channels: "This region has no channels yet.",
    subscribe: "Subscribe",
    unsubscribe: "Unsubscribe",
    subscribed: "subscribed",
    broadcast: "Broadcast to every online phone",
    broadcast_text: "Text",
    every_minutes: "Repeat every … minutes (optional)",
    until_utc: "Until (UTC, needed to repeat)",
    send_broadcast: "Send",
    bad_schedule: "The repeat or end time is not valid; nothing was sent.",
    all_regions: "Yellow pages of every region",
    country: "Country code (e.g. 886)",
    area_code: "Area (e.g. 886-02)",
    regions: "Regions asked",
    region_answered: "answered",
    region_silent: "did not answer in time; its people are missing from these results",
    dialer: "Dialer",
    top_signin_note: "Your number's region checks your password or pairing code; this server never keeps it.",
    no_region: "No region of this network holds that number.",
    region_unreachable: "Your number's region did not answer; try again shortly.",
    my_region: "Your region's portal",
    talkers: "Talkers",
    no_talkers: "No talkers yet.",
    number_taken: "{n} is taken; pick another.",
    number_outside: "{n} is not a number of this area.",
    number_yours: "{n} is already your number.",
    region_busy: "The region's database is not answering; try again shortly.",
    operator_sessions: "Signed-in operators",
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
    code_expired: "此配對碼已過期（有效 5 分鐘）。請在電話上輸入 `pair` 取得新的配對碼。",
    code_used: "此配對碼已使用過（每組只能用一次）。請在電話上輸入 `pair` 取得新的配對碼。",
    code_wrong: "號碼或配對碼錯誤。",
    number_disabled: "此號碼已被管理員停用。",
    pairing_code: "或配對碼（在電話上輸入 `pair`）",
    account: "帳號",
    current_password: "目前密碼",
    new_password: "新密碼（8 到 128 個字元）",
    change_password: "變更密碼",
    password_changed: "密碼已變更。您的其他登入工作階段皆已登出。",
    password_length: "密碼須為 8 到 128 個字元；未做任何變更。",
    friends: "朋友",
    add_friend: "新增朋友",
    remove: "移除",
    friend_number: "朋友的號碼（13 位數，任何區域）",
    friends_only: "只有朋友能看到我的狀態",
    no_friends: "還沒有朋友。",
    bad_friend: "這不是號碼：號碼有 13 位數，例如 886-2-12345678。",
    friend_self: "不能把自己加為朋友。",
    too_many_friends: "朋友太多（最多 1000 位）。",
    unknown: "未知",
    presence: "狀態",
    greetings: "問候圖",
    as_caller: "來電時",
    as_callee: "接聽時",
    no_greeting: "尚未設定。",
    upload: "上傳",
    picture: "圖片（PNG、JPEG、GIF 或 WebP，最大 1 MiB）",
    which: "哪一張問候圖",
    card: "以文字製作卡片",
    card_text: "文字",
    foreground: "文字顏色",
    background: "背景",
    layout: "版面",
    draw: "製作",
    greeting_saved: "問候圖已儲存。",
    no_file: "請選擇要上傳的圖片。",
    vanity: "選號",
    pattern: "要找的數字",
    contains: "包含",
    ends_with: "結尾是",
    find: "搜尋空號",
    bad_pattern: "模式須為 1 到 8 位數字（只限 0-9）。",
    none_free: "沒有符合的空號。",
    reserve: "選用此號碼",
    reserved: "您的新號碼是",
    reserved_note: "您的電話下次連線時會換成新號碼；舊號碼即刻停止解析。",
    operator: "管理員",
    name: "名稱",
    numbers: "號碼數",
    registrations: "註冊數",
    sessions: "登入工作階段",
    disable: "停用",
    enable: "啟用",
    disabled_numbers: "已停用的號碼",
    done: "完成。",
    not_in_area: "這不是本區已配發的號碼。",
    channels: "頻道",
    channels_intro: "電話的跑馬燈一次顯示一則：先是朋友傳給你的，再輪流顯示你訂閱的頻道。",
    no_channels: "本區還沒有頻道。",
    subscribe: "訂閱",
    unsubscribe: "取消訂閱",
    subscribed: "已訂閱",
    broadcast: "廣播給所有在線的電話",
    broadcast_text: "內容",
    every_minutes: "每隔幾分鐘重播（可不填）",
    until_utc: "直到（UTC，重播時必填）",
    send_broadcast: "送出",
    bad_schedule: "重播間隔或結束時間無效；沒有送出。",
    all_regions: "所有地區的黃頁",
    country: "國碼（例如 886）",
    area_code: "區碼（例如 886-02）",
    regions: "查詢的地區",
    region_answered: "已回覆",
    region_silent: "未及時回覆；其使用者不在此結果中",
    dialer: "撥號",
    top_signin_note: "密碼或配對碼由您號碼所屬的地區核對；本伺服器從不保存。",
    no_region: "本網路沒有任何地區持有這個號碼。",
    region_unreachable: "您號碼所屬的地區沒有回應，請稍後再試。",
    my_region: "您所屬地區的入口網站",
    talkers: "通話帳號",
    no_talkers: "尚無通話帳號。",
    number_taken: "{n} 已有人使用，請另選一個。",
    number_outside: "{n} 不是本區的號碼。",
    number_yours: "{n} 已經是您的號碼。",
    region_busy: "本區的資料庫沒有回應，請稍後再試。",
    operator_sessions: "已登入的管理員",
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
