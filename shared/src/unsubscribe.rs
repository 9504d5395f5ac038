//! One-click unsubscribe links (RFC 8058): `/u/{token}` on herald-api, where the token names
//! a campaign and a person, signed (`SecretBox::sign`, purpose `unsubscribe`) so that nobody
//! can unsubscribe someone else by guessing or changing ids. The token is base64url of the two
//! ids and the first 16 bytes of the signature: 64 characters, no state to store.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::secrets::SecretBox;

const PURPOSE: &str = "unsubscribe";
const TAG_LEN: usize = 16;

/// The token of `person_id` in `campaign_id`.
pub fn token(secrets: &SecretBox, campaign_id: Uuid, person_id: Uuid) -> String {
    let mut bytes = Vec::with_capacity(32 + TAG_LEN);
    bytes.extend_from_slice(campaign_id.as_bytes());
    bytes.extend_from_slice(person_id.as_bytes());
    let tag = secrets.sign(PURPOSE, &bytes);
    bytes.extend_from_slice(&tag[..TAG_LEN]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The (campaign, person) a token names, if it is one Herald signed.
pub fn read(secrets: &SecretBox, token: &str) -> Option<(Uuid, Uuid)> {
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
    if bytes.len() != 32 + TAG_LEN {
        return None;
    }
    let (ids, tag) = bytes.split_at(32);
    if !secrets.verify(PURPOSE, ids, tag) {
        return None;
    }
    let campaign_id = Uuid::from_slice(&ids[..16]).ok()?;
    let person_id = Uuid::from_slice(&ids[16..]).ok()?;
    Some((campaign_id, person_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_campaign_and_person_and_cannot_be_forged_or_altered() {
        let ours = SecretBox::new(&[3; 32]);
        let theirs = SecretBox::new(&[4; 32]);
        let (campaign, person) = (Uuid::new_v4(), Uuid::new_v4());
        let signed = token(&ours, campaign, person);
        assert_eq!(signed.len(), 64);
        assert_eq!(read(&ours, &signed), Some((campaign, person)));
        assert_eq!(read(&theirs, &signed), None);
        // another person's id in a token signed for someone else
        let mut bytes = URL_SAFE_NO_PAD.decode(&signed).unwrap();
        bytes[20] ^= 1;
        assert_eq!(read(&ours, &URL_SAFE_NO_PAD.encode(&bytes)), None);
        assert_eq!(read(&ours, &signed[..40]), None);
        assert_eq!(read(&ours, "not a token"), None);
        // a signature made for another purpose is not an unsubscribe signature
        let mut ids = campaign.as_bytes().to_vec();
        ids.extend_from_slice(person.as_bytes());
        let other = ours.sign("something else", &ids);
        ids.extend_from_slice(&other[..TAG_LEN]);
        assert_eq!(read(&ours, &URL_SAFE_NO_PAD.encode(ids)), None);
    }
}
