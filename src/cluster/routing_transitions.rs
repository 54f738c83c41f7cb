//! The routing transitions by name: the rules' Lua file (`lua/routing.lua`, one function
//! `T.<name>` a transition) and the list of those names. The routing library loads the one
//! and registers the other (`routing_library`); the adapter calls a transition by its name
//! (`routing_scripts`).

/// The routing rules, loaded as one Functions library with `restore.rs`'s (`routing_library.rs`).
pub(crate) const ROUTING_LUA: &str = concat!(include_str!("lua/bytes_order.lua"), include_str!("lua/routing.lua"));

/// The transitions, each one function of the routing library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transition {
    AddCategory,
    RemoveCategory,
    Join,
    Leave,
    CustomerDisconnected,
    CustomerResumed,
    CustomerGraceExpired,
    AgentOnline,
    AgentDisconnected,
    AgentResumed,
    AgentGraceExpired,
    AgentOffline,
    SetAvailable,
    SetLimit,
    SetCategories,
    EndChat,
    SetPairingRoom,
    NodeLost,
    SetStatus,
    SetCategoryOpen,
    SetCategoryMode,
    AcceptOffer,
    DeclineOffer,
    OfferExpired,
    TransferToAgent,
    TransferToCategory,
}

impl Transition {
    pub(super) const ALL: [Transition; 26] = [
        Self::AddCategory,
        Self::RemoveCategory,
        Self::Join,
        Self::Leave,
        Self::CustomerDisconnected,
        Self::CustomerResumed,
        Self::CustomerGraceExpired,
        Self::AgentOnline,
        Self::AgentDisconnected,
        Self::AgentResumed,
        Self::AgentGraceExpired,
        Self::AgentOffline,
        Self::SetAvailable,
        Self::SetLimit,
        Self::SetCategories,
        Self::EndChat,
        Self::SetPairingRoom,
        Self::NodeLost,
        Self::SetStatus,
        Self::SetCategoryOpen,
        Self::SetCategoryMode,
        Self::AcceptOffer,
        Self::DeclineOffer,
        Self::OfferExpired,
        Self::TransferToAgent,
        Self::TransferToCategory,
    ];

    /// The name of its function in `lua/routing.lua` (and the `t` field of its events).
    pub(super) const fn name(self) -> &'static str {
        match self {
            Self::AddCategory => "add_category",
            Self::RemoveCategory => "remove_category",
            Self::Join => "join",
            Self::Leave => "leave",
            Self::CustomerDisconnected => "customer_disconnected",
            Self::CustomerResumed => "customer_resumed",
            Self::CustomerGraceExpired => "customer_grace_expired",
            Self::AgentOnline => "agent_online",
            Self::AgentDisconnected => "agent_disconnected",
            Self::AgentResumed => "agent_resumed",
            Self::AgentGraceExpired => "agent_grace_expired",
            Self::AgentOffline => "agent_offline",
            Self::SetAvailable => "set_available",
            Self::SetLimit => "set_limit",
            Self::SetCategories => "set_categories",
            Self::EndChat => "end_chat",
            Self::SetPairingRoom => "set_pairing_room",
            Self::NodeLost => "node_lost",
            Self::SetStatus => "set_status",
            Self::SetCategoryOpen => "set_category_open",
            Self::SetCategoryMode => "set_category_mode",
            Self::AcceptOffer => "accept_offer",
            Self::DeclineOffer => "decline_offer",
            Self::OfferExpired => "offer_expired",
            Self::TransferToAgent => "transfer_to_agent",
            Self::TransferToCategory => "transfer_to_category",
        }
    }
}

/// Every transition's name, as the routing library registers them (`routing_library.rs`).
pub(crate) static TRANSITION_NAMES: &[&str] = &{
    let mut names = [""; Transition::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = Transition::ALL[i].name();
        i += 1;
    }
    names
};
