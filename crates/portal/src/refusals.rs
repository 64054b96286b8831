//! The refusals that other crates give as errors (a picture the greetings
//! crate will not take, a post the channels crate will not keep), worded
//! in the page's language. English is each error's own `Display`; the
//! other languages are here, so that those crates stay free of pages.

use peerdial_channels::ChannelError;
use peerdial_greetings::GreetingError;

use crate::i18n::Msg;

/// What the person reads when a greeting was not taken.
pub fn picture(e: &GreetingError, t: &Msg) -> String {
    if t.code != crate::i18n::ZH.code {
        return e.to_string();
    }
    use GreetingError as G;
    const FORMATS: &str = "請上傳 PNG、JPEG、GIF 或 WebP。";
    match e {
        G::Empty => "上傳的檔案是空的。".into(),
        G::TooLarge { bytes, max } => format!("檔案有 {bytes} 位元組；上限為 {max} 位元組。"),
        G::NotAnImage => format!("這不是圖片：{FORMATS}"),
        G::Unsupported(format) => format!("不接受 {format} 圖片：{FORMATS}"),
        G::TooManyPixels { w, h, max_w, max_h } => format!("圖片宣告 {w}x{h} 像素；上限為 {max_w}x{max_h}。"),
        G::ZeroSized { w, h } => format!("圖片沒有像素（{w}x{h}）。"),
        G::Truncated(format) => format!("這張 {format} 圖片不完整。"),
        G::Corrupt(format) => format!("這張 {format} 圖片已損毀。"),
        G::TooMuchMemory => "解碼這張圖片所需的記憶體超過上限。".into(),
        G::EmptyText => "卡片沒有文字。".into(),
        G::TextTooLong { chars, max } => format!("卡片文字有 {chars} 個字；上限為 {max} 個字。"),
        G::ControlCharacter { position, code } => format!("卡片文字的第 {} 個字是控制字元 U+{code:04X}。", position + 1),
        G::UncoveredCharacter { code } => format!("卡片的字型沒有 U+{code:04X} 這個字（支援拉丁、希臘與西里爾字母）。"),
        G::TextDoesNotFit => "卡片文字太長，放不進卡片。".into(),
        G::BadColour { field } => {
            let which = if *field == "foreground" { "文字" } else { "底色" };
            format!("{which}的顏色須寫成 #rrggbb。")
        }
        G::UnknownLayout => "未知的版面：請選置中、橫幅或左上。".into(),
        // The server's own trouble (font, encoder, cache), not the picture's.
        _ => "伺服器無法產生這張圖片，請稍後再試。".into(),
    }
}

/// What the person reads when a post, subscription or broadcast was refused.
pub fn channel(e: &ChannelError, t: &Msg) -> String {
    if t.code != crate::i18n::ZH.code {
        return e.to_string();
    }
    use ChannelError as C;
    match e {
        C::Empty => "內容是空的（控制字元已移除）。".into(),
        C::TooLong { len, max } => format!("內容有 {len} 位元組；上限為 {max} 位元組。"),
        C::UnknownChannel(name) => format!("沒有名為「{name}」的頻道。"),
        C::Exists(name) => format!("已有名為「{name}」的頻道。"),
        C::BadName(name) => format!("頻道名稱「{name}」無效：須為 1 到 32 個小寫字母、數字或「-」。"),
        C::NotPublisher(n, name) => format!("{n} 不能在頻道「{name}」發布。"),
        C::BadExpiry => "有效期限須在 1 分鐘到 30 天之間。".into(),
        C::Relayed(name) => format!("「{name}」是全網頻道：請在頂層伺服器發布，各地區會轉送。"),
        C::Ended(name) => format!("頻道「{name}」已結束，不再接受發布。"),
        C::Expired => "這則內容已經過期。".into(),
        C::RateLimited(s) => format!("發布太頻繁，請 {s} 秒後再試。"),
        C::BadSchedule(why) => format!("排程無效（{why}）。"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::{EN, ZH};

    #[test]
    fn english_is_the_errors_own_text_and_zh_hant_is_worded_here() {
        let e = GreetingError::NotAnImage;
        assert_eq!(picture(&e, &EN), e.to_string());
        assert_eq!(picture(&e, &ZH), "這不是圖片：請上傳 PNG、JPEG、GIF 或 WebP。");
        let e = GreetingError::ControlCharacter { position: 0, code: 0x1b };
        assert_eq!(picture(&e, &ZH), "卡片文字的第 1 個字是控制字元 U+001B。");
        let e = ChannelError::UnknownChannel("news".into());
        assert_eq!(channel(&e, &EN), "no channel named \"news\"");
        assert_eq!(channel(&e, &ZH), "沒有名為「news」的頻道。");
    }
}
