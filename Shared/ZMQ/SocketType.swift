import CZMQ

/// The ZeroMQ socket patterns the wrapper supports.
public enum SocketType: Sendable, CustomStringConvertible {
    case pair, publish, subscribe, request, reply, dealer, router, pull, push, xpublish, xsubscribe

    var rawValue: Int32 {
        switch self {
        case .pair: ZMQ_PAIR
        case .publish: ZMQ_PUB
        case .subscribe: ZMQ_SUB
        case .request: ZMQ_REQ
        case .reply: ZMQ_REP
        case .dealer: ZMQ_DEALER
        case .router: ZMQ_ROUTER
        case .pull: ZMQ_PULL
        case .push: ZMQ_PUSH
        case .xpublish: ZMQ_XPUB
        case .xsubscribe: ZMQ_XSUB
        }
    }

    public var description: String {
        switch self {
        case .pair: "PAIR"
        case .publish: "PUB"
        case .subscribe: "SUB"
        case .request: "REQ"
        case .reply: "REP"
        case .dealer: "DEALER"
        case .router: "ROUTER"
        case .pull: "PULL"
        case .push: "PUSH"
        case .xpublish: "XPUB"
        case .xsubscribe: "XSUB"
        }
    }
}
