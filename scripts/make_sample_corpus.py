#!/usr/bin/env python3
"""Generates the bundled sample corpus under data/sample/raw/ (one JSONL file per domain).

Short Korean documents are assembled from the templates and vocabulary below with a seeded
random generator, so the output is identical on every run. Each domain also gets deliberate
near-duplicates (spacing changes, particle swaps, punctuation changes, trimmed tails) and a few
malformed lines that ingest must reject (invalid JSON, missing or empty text, text as a number,
an empty line).

    python3 scripts/make_sample_corpus.py [--out data/sample/raw] [--seed 42] [--per-domain 900]
"""

import argparse
import json
import os
import random

PEOPLE = ["김민준", "이서연", "박지호", "최유진", "정하늘", "강도윤", "윤서아", "장우진", "임채원", "한지민"]
CITIES = ["서울", "부산", "대구", "인천", "광주", "대전", "울산", "세종", "수원", "제주"]
ORGS = ["시청", "교육청", "보건소", "경찰청", "국토교통부", "환경부", "기상청", "중소벤처기업부", "문화체육관광부", "소방본부"]
TOPICS = ["대중교통 요금", "청년 주거 지원", "미세먼지 저감", "전통시장 활성화", "공공 와이파이", "노인 돌봄 서비스",
          "자전거 도로", "지역 축제", "재난 안전 문자", "도서관 운영 시간", "전기차 충전소", "하천 정비"]
NUMS = ["3", "5", "7", "10", "12", "15", "20", "25", "30", "40"]
MONTHS = [f"{m}월" for m in range(1, 13)]

NEWS = [
    "{city} {org}(은) {month}부터 {topic} 정책을 새로 시행한다고 밝혔다. 담당자는 시민 의견을 반영해 세부 계획을 마련했다고 설명했다.",
    "{org}에 따르면 올해 {topic} 관련 예산은 지난해보다 {pct}% 늘었다. 전문가들은 효과를 꼼꼼히 점검해야 한다고 지적했다.",
    "{city}에서 열린 {topic} 토론회에는 주민 {n}0여 명이 참석했다. 참석자들은 실질적인 대책이 필요하다고 입을 모았다.",
    "{person} {org} 대변인은 {topic} 문제를 해결하기 위해 관계 기관과 협의하고 있다고 말했다.",
    "{month} {city} 지역의 {topic} 만족도 조사 결과 응답자의 {pct}%가 긍정적으로 평가했다.",
    "{org}(은) {topic} 개선을 위한 시범 사업을 {city}에서 먼저 추진하고, 결과를 보고 전국으로 확대할 계획이다.",
]
LAW_SUBJ = ["임차인", "임대인", "사업주", "근로자", "채무자", "채권자", "피고인", "원고", "피고", "행정청"]
LAW_ACT = ["계약을 해지", "손해를 배상", "보증금을 반환", "허가를 취소", "신고를 수리", "임금을 지급", "처분을 취소", "등기를 이전"]
LAW = [
    "제{n}조({topic}) ① {subj}(은) 대통령령으로 정하는 바에 따라 {act}하여야 한다. ② 제1항에 따른 절차는 {org}(이) 정한다.",
    "{subj}(이) 정당한 사유 없이 {act}하지 아니한 때에는 {n}일 이내에 이를 이행하도록 명할 수 있다.",
    "원심은 {subj}의 주장을 받아들여 {act}할 의무가 있다고 판단하였다. 그러나 이러한 판단은 수긍하기 어렵다.",
    "이 법은 {topic}에 관한 사항을 규정함으로써 국민의 권리를 보호하고 공공복리의 증진에 이바지함을 목적으로 한다.",
    "{subj}(은) {act}하려는 경우 미리 {org}에 신고하여야 하며, 신고 사항이 변경된 때에도 또한 같다.",
    "대법원은 {subj}(이) {act}할 책임이 없다고 본 원심 판결을 파기하고 사건을 {city}지방법원에 환송하였다.",
]
ITEMS = ["무선 이어폰", "전기밥솥", "운동화", "노트북 가방", "텀블러", "가습기", "블루투스 스피커", "보조배터리", "캠핑 의자", "기계식 키보드"]
GOOD = ["배송이 빠르고 포장도 꼼꼼했어요", "가격 대비 품질이 정말 좋네요", "디자인이 예쁘고 마감도 훌륭해요", "생각보다 가볍고 튼튼합니다", "소음이 적어서 밤에도 쓰기 좋아요"]
BAD = ["설명과 색상이 조금 달라요", "배터리가 금방 닳아서 아쉬워요", "냄새가 좀 나서 며칠 환기했어요", "사이즈가 생각보다 작네요", "교환 절차가 번거로웠어요"]
REVIEWS = [
    "{item} 샀는데 {good}. 재구매 의사 있습니다!",
    "{item} 한 달 써본 후기입니다. {good}. 다만 {bad}.",
    "솔직히 {item}(은) 기대 이하였어요. {bad}. 그래도 {good}.",
    "{person}님 추천으로 {item} 구매했어요. {good} ㅎㅎ",
    "별 {star}개 드려요. {item} {good}, 그런데 {bad}.",
    "부모님 선물로 {item} 드렸는데 {good}. 만족합니다.",
]
QUESTIONS = ["오늘 점심 뭐 먹지", "주말에 뭐 하고 놀까", "요즘 잠이 안 와", "시험이 얼마 안 남았어", "친구랑 싸웠어",
             "이직을 고민하고 있어", "운동을 시작하고 싶어", "비 오는 날엔 뭐 하지", "여행 가고 싶다", "고양이를 키우고 싶어"]
ANSWERS = ["따뜻한 국밥 어때요", "가까운 공원에 산책 가 보세요", "잠들기 전에 휴대폰을 멀리 두세요", "조금씩 꾸준히 준비하면 돼요",
           "먼저 솔직하게 이야기해 보세요", "장단점을 적어 보면 도움이 돼요", "가벼운 걷기부터 시작해 보세요",
           "좋아하는 영화를 보는 건 어때요", "{city} 여행을 추천해요", "책임질 수 있는지 먼저 생각해 보세요"]
CHAT = [
    "{q}?\n{a}.",
    "{q}. 어떻게 해야 할까?\n{a}. 너무 걱정하지 마세요.",
    "나 {q}...\n{a}!",
    "{person}: {q}\n봇: {a}.",
]

PARTICLES = [("은 ", "는 "), ("이 ", "가 "), ("을 ", "를 "), ("에서 ", "에 "), ("와 ", "과 "), ("으로 ", "로 ")]


def fill(rng, template, domain):
    v = {
        "city": rng.choice(CITIES), "org": rng.choice(ORGS), "topic": rng.choice(TOPICS), "n": rng.choice(NUMS),
        "month": rng.choice(MONTHS), "person": rng.choice(PEOPLE), "subj": rng.choice(LAW_SUBJ),
        "act": rng.choice(LAW_ACT), "item": rng.choice(ITEMS), "good": rng.choice(GOOD), "bad": rng.choice(BAD),
        "pct": str(rng.randint(5, 95)), "star": rng.choice(["한", "두", "세", "네", "다섯"]), "q": rng.choice(QUESTIONS),
    }
    v["a"] = rng.choice(ANSWERS).format(**v)
    return josa(template.format(**v))


JOSA = {"은": ("은", "는"), "이": ("이", "가"), "을": ("을", "를"), "과": ("과", "와"), "으로": ("으로", "로")}


def josa(text):
    """Resolves markers such as `경찰청(은)` to the particle that fits the preceding syllable."""
    out = []
    i = 0
    while i < len(text):
        if text[i] == "(":
            j = text.find(")", i)
            key = text[i + 1:j] if j > 0 else None
            if key in JOSA and out:
                prev = out[-1]
                code = ord(prev) - 0xAC00
                batchim = 0 <= code < 11172 and code % 28 != 0
                if key == "으로" and 0 <= code < 11172 and code % 28 == 8:  # ㄹ takes 로
                    batchim = False
                out.append(JOSA[key][0] if batchim else JOSA[key][1])
                i = j + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def near_duplicate(rng, text):
    """A light edit of `text`: spacing, a particle swap, punctuation, or a trimmed tail."""
    kind = rng.choice(["spacing", "particle", "punct", "trim"])
    if kind == "spacing":
        spaces = [i for i, c in enumerate(text) if c == " "]
        if spaces:
            i = rng.choice(spaces)
            return text[:i] + text[i + 1:] if rng.random() < 0.5 else text[:i] + "  " + text[i + 1:]
    if kind == "particle":
        for a, b in rng.sample(PARTICLES, len(PARTICLES)):
            if a in text:
                return text.replace(a, b, 1)
            if b in text:
                return text.replace(b, a, 1)
    if kind == "punct":
        for a, b in [(".", "!"), (",", ""), ("!", "."), ("?", "??")]:
            if a in text:
                return text.replace(a, b, 1)
        return text + "."
    words = text.split(" ")
    return " ".join(words[: max(3, len(words) - rng.randint(1, 3))])


def build(domain, templates, rng, count):
    lines = []
    texts = []
    for i in range(count):
        if texts and rng.random() < 0.12:
            text = near_duplicate(rng, rng.choice(texts))
        else:
            text = fill(rng, rng.choice(templates), domain)
            if rng.random() < 0.5:
                text += " " + fill(rng, rng.choice(templates), domain)
        texts.append(text)
        doc = {"id": f"{domain}-{i:05d}", "text": text}
        # Most lines name their domain; some rely on the file name.
        if rng.random() < 0.9:
            doc["domain"] = domain
        if domain == "reviews":
            doc["rating"] = rng.randint(1, 5)
        lines.append(json.dumps(doc, ensure_ascii=False))
    bad = [
        '{"id": "%s-bad-1", "text": "따옴표가 닫히지 않은 줄' % domain,
        '{"id": "%s-bad-2", "body": "text 키가 없는 줄"}' % domain,
        '{"id": "%s-bad-3", "text": ""}' % domain,
        '{"id": "%s-bad-4", "text": 12345}' % domain,
        "",
        '["배열", "은", "문서가", "아니다"]',
    ]
    for b in bad:
        lines.insert(rng.randrange(len(lines)), b)
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/sample/raw")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--per-domain", type=int, default=900)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for k, (domain, templates) in enumerate([("news", NEWS), ("law", LAW), ("reviews", REVIEWS), ("chat", CHAT)]):
        rng = random.Random(args.seed * 1000 + k)
        lines = build(domain, templates, rng, args.per_domain)
        path = os.path.join(args.out, f"{domain}.jsonl")
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(lines) + "\n")
        print(f"{path}: {len(lines)} lines")


if __name__ == "__main__":
    main()
