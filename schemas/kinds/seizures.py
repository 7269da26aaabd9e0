"""Items seized. The payload is itself a union on ``item``, so each item carries exactly the
fields that mean something for it (a substance only for drug wraps, pence only for cash) and the
rule is expressible in JSON Schema as well as in pydantic."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from schemas._types import STRICT_FROZEN, Note
from schemas.envelope import Envelope, SchemaV1

Substance = Literal["crack", "heroin", "cocaine", "cannabis", "other"]
Quantity = Annotated[int, Field(gt=0, le=1_000_000)]
# £1bn in pence: far above any single seizure, far below any integer overflow.
AmountPence = Annotated[int, Field(gt=0, le=100_000_000_000)]


class DrugWrapPayload(BaseModel):
    """Wraps of a drug: counted in `drug_wraps_seized`, by substance."""

    model_config = STRICT_FROZEN
    item: Literal["drug_wrap"]
    substance: Substance
    quantity: Quantity


class MobilePhonePayload(BaseModel):
    """Mobile phones: counted in `mobile_phones_seized`."""

    model_config = STRICT_FROZEN
    item: Literal["mobile_phone"]
    quantity: Quantity


class WeaponPayload(BaseModel):
    """Weapons: counted in `weapons_seized`."""

    model_config = STRICT_FROZEN
    item: Literal["weapon"]
    quantity: Quantity
    description: Note | None = None


class CashPayload(BaseModel):
    """Cash, in integer pence sterling: added to `cash_seized_pence`."""

    model_config = STRICT_FROZEN
    item: Literal["cash"]
    amount_pence: AmountPence
    currency: Literal["GBP"]


class OtherItemPayload(BaseModel):
    """Anything else: counted in `other_items_seized`."""

    model_config = STRICT_FROZEN
    item: Literal["other"]
    quantity: Quantity
    description: Note | None = None


SeizurePayload = Annotated[
    DrugWrapPayload | MobilePhonePayload | WeaponPayload | CashPayload | OtherItemPayload,
    Field(discriminator="item"),
]
ITEMS = ("drug_wrap", "mobile_phone", "weapon", "cash", "other")


class ItemSeized(Envelope):
    """Something was seized: a count of items, or cash in pence."""

    type: Literal["item_seized"]
    schema_version: SchemaV1
    payload: SeizurePayload
