"""The catalogue carlink ships with: services, their offers per country and the first terms versions.

`ensure_catalogue` adds what is missing and never touches what exists, so running it at every start is
safe and an operator's later revision (a new offer or terms version) is never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.catalog.countries import STORE_COUNTRIES
from carlink.catalog.models import Offer, Service, TermsVersion

# Prices per currency in minor units (JPY has none). Keys: term names of catalog.models.Offer.
Prices = dict[str, dict[str, int]]


@dataclass(frozen=True)
class ServiceSeed:
    code: str
    category: str
    names: dict[str, str]
    descriptions: dict[str, str]
    prices: Prices
    kind: str = "service"
    trial_months: int = 0
    engines: tuple[str, ...] = ()
    model_keys: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()  # empty: every store country
    carrier_run: bool = False
    volume_mb: int | None = None
    terms: dict[str, str] = field(default_factory=dict)


def _p(eur: int, gbp: int, usd: int, jpy: int) -> dict[str, int]:
    return {"EUR": eur, "CHF": eur, "GBP": gbp, "USD": usd, "JPY": jpy}


SERVICES: tuple[ServiceSeed, ...] = (
    ServiceSeed(
        code="remote-services",
        category="remote",
        names={"en": "Remote services", "de": "Fernzugriff", "ja": "リモートサービス"},
        descriptions={
            "en": "Lock, unlock, find and pre-condition your car from the portal and the app.",
            "de": "Auto ver- und entriegeln, finden und vorklimatisieren – im Portal und in der App.",
            "ja": "ポータルとアプリから、施錠・解錠、車両の位置確認、乗車前の空調ができます。",
        },
        trial_months=12,
        prices={"P1Y": _p(9900, 8900, 9900, 13200), "P3Y": _p(24900, 22900, 24900, 33000)},
    ),
    ServiceSeed(
        code="navigation-plus",
        category="navigation",
        names={
            "en": "Navigation Plus with live traffic",
            "de": "Navigation Plus mit Echtzeitverkehr",
            "ja": "ナビゲーション・プラス（リアルタイム交通情報）",
        },
        descriptions={
            "en": "Online routes that avoid jams, fuel and charging stops on the way, online map updates.",
            "de": "Online-Routen um Staus herum, Tank- und Ladestopps unterwegs, Karten-Updates online.",
            "ja": "渋滞を避けるオンラインルート、途中の給油・充電スポット、地図のオンライン更新。",
        },
        trial_months=3,
        prices={"P1M": _p(990, 899, 999, 1320), "P1Y": _p(9900, 8900, 9900, 13200)},
    ),
    ServiceSeed(
        code="charging-planner",
        category="remote",
        names={"en": "Charging planner", "de": "Ladeplaner", "ja": "充電プランナー"},
        descriptions={
            "en": "Timers, departure times and charging at the cheapest hours, set from anywhere.",
            "de": "Timer, Abfahrtszeiten und Laden zu günstigen Stunden – von überall einstellbar.",
            "ja": "タイマー、出発時刻、電気料金の安い時間帯の充電をどこからでも設定できます。",
        },
        engines=("BEV", "PHEV"),
        prices={"P1Y": _p(4900, 4500, 4900, 6600), "P3Y": _p(11900, 10900, 11900, 15800)},
    ),
    ServiceSeed(
        code="car-security",
        category="security",
        names={"en": "Car security alerts", "de": "Fahrzeugsicherheit", "ja": "カーセキュリティ通知"},
        descriptions={
            "en": "An alert on your phone when the alarm goes off, the car is moved or a door is left open.",
            "de": "Eine Nachricht aufs Telefon bei Alarm, bewegtem Auto oder offener Tür.",
            "ja": "警報の作動、車両の移動、ドアの閉め忘れをスマートフォンにお知らせします。",
        },
        prices={"P1Y": _p(5900, 5400, 5900, 7900), "P3Y": _p(14900, 13500, 14900, 19800)},
    ),
    ServiceSeed(
        code="tracking",
        category="security",
        names={"en": "Vehicle tracking", "de": "Fahrzeugortung", "ja": "車両トラッキング"},
        descriptions={
            "en": "Our security centre follows a stolen car around the clock and works with the police.",
            "de": "Unsere Sicherheitszentrale verfolgt ein gestohlenes Auto rund um die Uhr mit der Polizei.",
            "ja": "盗難時にはセキュリティセンターが24時間体制で車両を追跡し、警察と連携します。",
        },
        prices={"P1Y": _p(19900, 17900, 19900, 26400), "P3Y": _p(49900, 44900, 49900, 66000)},
    ),
    ServiceSeed(
        code="tracking-plus",
        category="security",
        names={"en": "Vehicle tracking plus", "de": "Fahrzeugortung plus", "ja": "車両トラッキング プラス"},
        descriptions={
            "en": "Tracking plus driver cards: a car moving without a known driver raises a silent alarm.",
            "de": "Ortung plus Fahrerkarten: fährt das Auto ohne bekannte Karte, geht ein stiller Alarm los.",
            "ja": "追跡サービスにドライバーカードを追加。"
            "登録カードなしで車両が動くとサイレントアラームが作動します。",
        },
        prices={"P1Y": _p(29900, 26900, 29900, 39600), "P3Y": _p(74900, 67900, 74900, 99000)},
    ),
    ServiceSeed(
        code="wifi-1gb",
        category="connectivity",
        kind="data_package",
        volume_mb=1024,
        names={"en": "In-car WiFi 1 GB", "de": "WLAN im Auto 1 GB", "ja": "車内Wi-Fi 1GB"},
        descriptions={
            "en": "1 GB a month for the hotspot in your car: fine for messages and the odd playlist.",
            "de": "1 GB im Monat für den Hotspot im Auto: genug für Nachrichten und ab und zu Musik.",
            "ja": "車内ホットスポット用に月1GB。メッセージや時々の音楽再生に。",
        },
        prices={"P1M": _p(500, 450, 500, 660)},
    ),
    ServiceSeed(
        code="wifi-2gb",
        category="connectivity",
        kind="data_package",
        volume_mb=2048,
        names={"en": "In-car WiFi 2 GB", "de": "WLAN im Auto 2 GB", "ja": "車内Wi-Fi 2GB"},
        descriptions={
            "en": "2 GB a month: for people who drive a lot and listen to music on the way.",
            "de": "2 GB im Monat: für Vielfahrer, die unterwegs Musik hören.",
            "ja": "月2GB。よく運転し、移動中に音楽を楽しむ方に。",
        },
        prices={"P1M": _p(900, 800, 900, 1200)},
    ),
    ServiceSeed(
        code="wifi-5gb",
        category="connectivity",
        kind="data_package",
        volume_mb=5120,
        names={"en": "In-car WiFi 5 GB", "de": "WLAN im Auto 5 GB", "ja": "車内Wi-Fi 5GB"},
        descriptions={
            "en": "5 GB a month: long distances with passengers streaming video.",
            "de": "5 GB im Monat: lange Strecken mit Mitfahrern, die Videos streamen.",
            "ja": "月5GB。同乗者が動画を見る長距離ドライブに。",
        },
        prices={"P1M": _p(1900, 1700, 1900, 2500)},
    ),
    # Functions on demand (FOD-1): bought for one car, permanent ("LIFE", stays with the VIN) or monthly;
    # the car fetches a signed data package and the charge follows its activation (FOD-2).
    ServiceSeed(
        code="adaptive-cruise",
        category="function",
        kind="function",
        names={"en": "Adaptive cruise control", "de": "Abstandsregeltempomat", "ja": "アダプティブクルーズ"},
        descriptions={
            "en": "Keeps the speed you set and the distance to the car ahead, down to a stop in traffic.",
            "de": "Hält Ihr Tempo und den Abstand zum Vordermann – im Stau bis zum Stillstand.",
            "ja": "設定速度と前車との車間を保ち、渋滞時は停止まで対応します。",
        },
        model_keys=("911-8", "macan-2", "cayenne-3", "panamera-2", "taycan-1"),
        prices={"LIFE": _p(119000, 105000, 129000, 158000), "P1M": _p(1900, 1700, 1900, 2500)},
    ),
    ServiceSeed(
        code="matrix-lights",
        category="function",
        kind="function",
        names={"en": "Matrix LED high beam", "de": "Matrix-LED-Fernlicht", "ja": "マトリクスLEDハイビーム"},
        descriptions={
            "en": "High beam that stays on and shades out oncoming traffic, segment by segment.",
            "de": "Fernlicht, das an bleibt und den Gegenverkehr Segment für Segment ausblendet.",
            "ja": "ハイビームのまま、対向車の部分だけをきめ細かく減光します。",
        },
        countries=("JP", "DE", "AT", "NL", "CH", "GB"),  # not approved in the US
        prices={"LIFE": _p(89000, 79000, 89000, 118000)},
    ),
    ServiceSeed(
        code="power-boost",
        category="function",
        kind="function",
        names={"en": "Power boost", "de": "Leistungsplus", "ja": "パワーブースト"},
        descriptions={
            "en": "More power from the electric motors for overtaking and launch control.",
            "de": "Mehr Leistung der Elektromotoren zum Überholen und für die Launch Control.",
            "ja": "追い越しやローンチコントロールで、モーターの出力を高めます。",
        },
        engines=("BEV",),
        prices={"LIFE": _p(149000, 132000, 159000, 198000), "P1M": _p(3900, 3500, 3900, 5200)},
    ),
    ServiceSeed(
        code="lane-assist",
        category="function",
        kind="function",
        names={"en": "Lane keeping assist", "de": "Spurhalteassistent", "ja": "レーンキープアシスト"},
        descriptions={
            "en": "Gently steers the car back when it drifts out of its lane without the indicator on.",
            "de": "Lenkt sanft zurück, wenn das Auto ohne Blinker die Spur verlässt.",
            "ja": "ウインカーなしで車線を外れそうになると、穏やかにステアリングを修正します。",
        },
        prices={"LIFE": _p(59000, 52000, 59000, 78000), "P1M": _p(1200, 1100, 1200, 1600)},
    ),
    ServiceSeed(
        code="carrier-connect",
        category="connectivity",
        carrier_run=True,
        countries=("JP", "US"),
        names={
            "en": "Carrier Connect (run by our mobile partner)",
            "de": "Carrier Connect (betrieben von unserem Mobilfunkpartner)",
            "ja": "キャリアコネクト（提携通信事業者が提供）",
        },
        descriptions={
            "en": "The car's own mobile line for tracking and connected services, after the included trial.",
            "de": "Die eigene Mobilfunkleitung des Autos für Ortung und vernetzte Dienste nach dem Test.",
            "ja": "無料期間終了後も、追跡とコネクテッドサービスに車両専用の通信回線を使えます。",
        },
        trial_months=12,
        prices={"P1Y": _p(6000, 5400, 6000, 7920)},
    ),
)

GENERAL_TERMS = {
    "en": (
        "carlink general terms",
        "1. These terms apply to every service you buy in the carlink store for one vehicle.\n"
        "2. A contract is concluded when we send you the order confirmation; the service can be used at "
        "once and appears in the car the next time it starts while online.\n"
        "3. A contract belongs to the vehicle (VIN) it was bought for. If the car changes hands, the rest "
        "of the term goes with it to the next owner. It cannot be moved to another vehicle.\n"
        "4. You may withdraw from a contract within 14 days of the confirmation without giving a reason "
        "and free of charge. We refund the full price to the card you paid with.\n"
        "5. Monthly subscriptions renew each month until you cancel them; a cancelled subscription runs "
        "to the end of the month already paid. Cancel them before you hand the car over.\n"
        "6. Services need the car's data connection. Coverage of some services, such as live traffic, "
        "is not complete in every area.\n",
    ),
    "de": (
        "Allgemeine Geschäftsbedingungen von carlink",
        "1. Diese Bedingungen gelten für jeden Dienst, den Sie im carlink-Store für ein Fahrzeug kaufen.\n"
        "2. Der Vertrag kommt zustande, wenn wir Ihnen die Bestellbestätigung senden; der Dienst ist sofort "
        "nutzbar und erscheint im Auto beim nächsten Start mit Verbindung.\n"
        "3. Ein Vertrag gehört zum Fahrzeug (FIN), für das er gekauft wurde. Wechselt das Auto den Besitzer, "
        "geht die Restlaufzeit auf den neuen Besitzer über. Auf ein anderes Fahrzeug übertragen lässt er "
        "sich nicht.\n"
        "4. Sie können innerhalb von 14 Tagen nach der Bestätigung ohne Angabe von Gründen kostenlos "
        "widerrufen. Wir erstatten den vollen Preis auf die Karte, mit der Sie bezahlt haben.\n"
        "5. Monatsabos verlängern sich jeden Monat, bis Sie kündigen; ein gekündigtes Abo läuft bis zum Ende "
        "des bezahlten Monats. Kündigen Sie Abos, bevor Sie das Auto übergeben.\n"
        "6. Die Dienste brauchen die Datenverbindung des Autos. Manche Dienste, etwa Echtzeitverkehr, sind "
        "nicht überall verfügbar.\n",
    ),
    "ja": (
        "carlink 利用規約",
        "1. 本規約は、carlink ストアで車両ごとに購入するすべてのサービスに適用されます。\n"
        "2. 契約は注文確認メールの送信をもって成立します。サービスはすぐに利用でき、車両がオンラインの状態で"
        "次に起動したときに車内に表示されます。\n"
        "3. 契約は購入時の車両（車台番号）に属します。車両の所有者が変わった場合、残りの期間は新しい所有者に"
        "引き継がれます。他の車両へ移すことはできません。\n"
        "4. 注文確認から14日以内であれば、理由を問わず無料で契約を撤回できます。代金はお支払いに使われた"
        "カードに全額返金します。\n"
        "5. 月額プランは解約されるまで毎月自動更新されます。解約後も支払済みの月末まで利用できます。"
        "車両を引き渡す前に月額プランを解約してください。\n"
        "6. サービスには車両のデータ通信が必要です。リアルタイム交通情報など一部のサービスは、"
        "すべての地域で利用できるわけではありません。\n",
    ),
}

_SERVICE_TERMS = {
    "en": (
        "Service terms: {name}",
        "{description}\n\nThe service runs for the term you chose, counted from the order confirmation. "
        "A trial ends by itself and is never charged. {extra}",
    ),
    "de": (
        "Leistungsbedingungen: {name}",
        "{description}\n\nDer Dienst läuft für die gewählte Laufzeit ab der Bestellbestätigung. Eine "
        "Testphase endet von selbst und wird nie berechnet. {extra}",
    ),
    "ja": (
        "サービス規約：{name}",
        "{description}\n\nサービスは注文確認から選択した期間ご利用いただけます。無料期間は自動で終了し、"
        "料金は発生しません。{extra}",
    ),
}
_EXTRA = {
    "data_package": {
        "en": "Unused volume does not carry over. When a package ends and is not renewed, the car switches "
        "hotspot sharing off; the app can still reach the car.",
        "de": "Nicht genutztes Volumen verfällt. Endet ein Paket ohne Verlängerung, schaltet das Auto die "
        "Hotspot-Freigabe aus; die App erreicht das Auto weiterhin.",
        "ja": "未使用のデータ容量は繰り越されません。"
        "更新されずにパッケージが終了すると、車両はホットスポットの共有をオフにします。アプリと車両間の通信は引き続き利用できます。",
    },
    "function": {
        "en": "The car fetches the function as a signed data package within 28 days of the order (data "
        "connection on, privacy mode off); otherwise the order is cancelled free of charge. The price is "
        "charged when the car reports the function activated. A permanent function stays with the vehicle "
        "for its life; a monthly one can be cancelled in the portal and the car switches it off after the "
        "paid month.",
        "de": "Das Auto lädt die Funktion innerhalb von 28 Tagen nach der Bestellung als signiertes "
        "Datenpaket (Datenverbindung an, Privatmodus aus); sonst wird die Bestellung kostenlos storniert. "
        "Berechnet wird erst, wenn das Auto die Funktion als aktiviert meldet. Eine dauerhafte Funktion "
        "bleibt ein Fahrzeugleben lang beim Auto; eine monatliche lässt sich im Portal kündigen und endet "
        "nach dem bezahlten Monat.",
        "ja": "ご注文から28日以内に、車両が署名付きデータパッケージとして機能を受信します"
        "（データ通信オン、プライバシーモードオフ）。受信されない場合、注文は無料で取り消されます。"
        "料金は車両が機能の有効化を報告した時点で請求されます。買い切りの機能は車両の生涯にわたり車両に残り、"
        "月額の機能はポータルで解約でき、支払済みの月の終了後に車両が無効化します。",
    },
    "carrier": {
        "en": "The line is provided by our mobile partner and needs the car's data connection.",
        "de": "Die Leitung stellt unser Mobilfunkpartner bereit; sie braucht die Datenverbindung des Autos.",
        "ja": "回線は提携通信事業者が提供し、車両のデータ通信が必要です。",
    },
}


def service_terms(seed: ServiceSeed, language: str) -> tuple[str, str]:
    title, body = _SERVICE_TERMS[language]
    kind = seed.kind if seed.kind in ("data_package", "function") else "carrier" if seed.carrier_run else ""
    extra = _EXTRA[kind][language] if kind else ""
    values = {"name": seed.names[language], "description": seed.descriptions[language], "extra": extra}
    return title.format(**values), body.format(**values).rstrip() + "\n"


# "LIFE": a permanent function, for the vehicle's life (FOD-7); a contract of 100 years stands for it.
LIFETIME_MONTHS = 1200
TERM_MONTHS = {"trial": 0, "P1M": 1, "P1Y": 12, "P3Y": 36, "LIFE": LIFETIME_MONTHS}


async def ensure_catalogue(session: AsyncSession) -> None:
    services = {row.code for row in await session.scalars(select(Service))}
    offered = {
        (row.service_code, row.country, row.term)
        for row in await session.scalars(select(Offer).where(Offer.retired_at.is_(None)))
    }
    documents = {(row.document, row.language) for row in await session.scalars(select(TermsVersion))}
    for order, seed in enumerate(SERVICES):
        if seed.code not in services:
            session.add(
                Service(
                    code=seed.code,
                    kind=seed.kind,
                    category=seed.category,
                    names=seed.names,
                    descriptions=seed.descriptions,
                    model_keys=list(seed.model_keys),
                    engines=list(seed.engines),
                    carrier_run=seed.carrier_run,
                    volume_mb=seed.volume_mb,
                    sort_order=order,
                )
            )
    await session.flush()  # offers and terms refer to the services
    for seed in SERVICES:
        for country in seed.countries or tuple(STORE_COUNTRIES):
            currency = STORE_COUNTRIES[country].currency
            terms = {term: prices[currency] for term, prices in seed.prices.items()}
            if seed.trial_months:
                terms["trial"] = 0
            for term, price in terms.items():
                if (seed.code, country, term) in offered:
                    continue
                session.add(
                    Offer(
                        service_code=seed.code,
                        country=country,
                        term=term,
                        term_months=seed.trial_months if term == "trial" else TERM_MONTHS[term],
                        # A data package renews only if the buyer asks for it (CON-3).
                        recurring=term == "P1M" and seed.kind != "data_package",
                        trial=term == "trial",
                        price_minor=price,
                        currency=currency,
                    )
                )
        for language in ("en", "de", "ja"):
            if (seed.code, language) not in documents:
                title, body = service_terms(seed, language)
                session.add(
                    TermsVersion(document=seed.code, language=language, version=1, title=title, body=body)
                )
    for language, (title, body) in GENERAL_TERMS.items():
        if ("general", language) not in documents:
            session.add(
                TermsVersion(document="general", language=language, version=1, title=title, body=body)
            )
    await session.flush()
