"""Version 1 of the privacy policy (PRV-1). `ensure_policy` adds it only when missing; it runs at each start.

Our own short, plausible text; a deployment publishes its lawyers' version as version 2 at /operator/policy.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.privacy.models import PolicyVersion

_ROWS_EN = [
    {
        "data": "Your ID: email address, name, country, language",
        "purpose": "Signing you in and writing to you",
        "basis": "Contract",
        "kept": "Until you ask us to erase your ID",
    },
    {
        "data": "Your cars and who may use them",
        "purpose": "Showing your cars and sending your remote commands",
        "basis": "Contract",
        "kept": "While the car is in your profile",
    },
    {
        "data": "Readings from the car (position, charge, doors)",
        "purpose": "Showing the car's state; nothing is stored in privacy mode",
        "basis": "Contract",
        "kept": "90 days",
    },
    {
        "data": "Orders, contracts and payments (card brand and last 4 digits only)",
        "purpose": "Selling and running connected services",
        "basis": "Contract and legal duty",
        "kept": "10 years (tax law); names and addresses are removed on erasure",
    },
    {
        "data": "Your chosen partner and appointments",
        "purpose": "Letting your dealer look after you, only with your consent",
        "basis": "Consent",
        "kept": "Until you revoke your consent or ask for erasure",
    },
]

_ROWS_DE = [
    {
        "data": "Ihre ID: E-Mail-Adresse, Name, Land, Sprache",
        "purpose": "Anmeldung und Nachrichten an Sie",
        "basis": "Vertrag",
        "kept": "Bis Sie die Löschung verlangen",
    },
    {
        "data": "Ihre Fahrzeuge und wer sie nutzen darf",
        "purpose": "Anzeige Ihrer Fahrzeuge, Fernbefehle",
        "basis": "Vertrag",
        "kept": "Solange das Fahrzeug in Ihrem Profil ist",
    },
    {
        "data": "Bestellungen, Verträge, Zahlungen (nur Kartenmarke und letzte 4 Ziffern)",
        "purpose": "Verkauf und Betrieb der Dienste",
        "basis": "Vertrag und gesetzliche Pflicht",
        "kept": "10 Jahre; Namen und Adressen werden bei Löschung entfernt",
    },
    {
        "data": "Ihr gewählter Partner und Termine",
        "purpose": "Betreuung durch Ihr Autohaus, nur mit Ihrer Einwilligung",
        "basis": "Einwilligung",
        "kept": "Bis zum Widerruf oder zur Löschung",
    },
]

_ROWS_JA = [
    {
        "data": "ID（メールアドレス、氏名、国、言語）",
        "purpose": "サインインとご連絡",
        "basis": "契約",
        "kept": "削除のご依頼まで",
    },
    {
        "data": "お車と利用者",
        "purpose": "お車の表示とリモート操作",
        "basis": "契約",
        "kept": "お車がプロフィールにある間",
    },
    {
        "data": "注文・契約・支払い（カードブランドと下4桁のみ）",
        "purpose": "コネクトサービスの販売と提供",
        "basis": "契約と法的義務",
        "kept": "10年（削除時に氏名と住所は消去）",
    },
    {
        "data": "選択したパートナーと予約",
        "purpose": "同意がある場合のみ販売店によるサポート",
        "basis": "同意",
        "kept": "同意の撤回または削除まで",
    },
]

POLICY_V1: dict[str, Any] = {
    "en": {
        "title": "How carlink handles your data",
        "summary": (
            "We keep only what we need to run your connected car, we never sell your data, and your dealer "
            "sees your data only while you consent. You can download everything we hold about you and ask "
            "us to erase it at any time."
        ),
        "rows": _ROWS_EN,
    },
    "de": {
        "title": "Wie carlink mit Ihren Daten umgeht",
        "summary": (
            "Wir speichern nur, was wir für Ihr vernetztes Fahrzeug brauchen, verkaufen keine Daten, und Ihr "
            "Autohaus sieht Ihre Daten nur mit Ihrer Einwilligung. Sie können jederzeit alles herunterladen "
            "oder die Löschung verlangen."
        ),
        "rows": _ROWS_DE,
    },
    "ja": {
        "title": "carlink の個人データの取り扱い",
        "summary": (
            "コネクテッドカーの提供に必要なデータのみを保存し、販売することはありません。販売店は同意がある場合のみ"
            "データを参照します。いつでもデータのダウンロードと削除のご依頼ができます。"
        ),
        "rows": _ROWS_JA,
    },
}


async def ensure_policy(session: AsyncSession) -> None:
    """Publishes version 1 when no version exists yet; never touches a published one."""
    if await session.scalar(select(PolicyVersion.version).limit(1)) is None:
        session.add(PolicyVersion(version=1, texts=POLICY_V1))
        await session.flush()
