<?php
// This file is part of the riskstream Moodle plugin.
//
// This program is free software: you can redistribute it and/or modify
// it under the terms of the GNU General Public License as published by
// the Free Software Foundation, either version 3 of the License, or
// (at your option) any later version.


namespace local_riskstream\external;

use context_course;
use context_system;
use core_external\external_api;
use core_external\external_function_parameters;
use core_external\external_multiple_structure;
use core_external\external_single_structure;
use core_external\external_value;
use core_external\external_warnings;
use invalid_parameter_exception;

/**
 * local_riskstream_get_events: the standard log, paged by id, for the riskstream connector.
 *
 * Reads through the log manager's SQL reader (logstore_standard), so it honours the site's
 * log configuration. Rows are returned in id order; the connector keeps lastid as its cursor.
 *
 * @package    local_riskstream
 * @copyright  2026 riskstream
 * @license    http://www.gnu.org/copyleft/gpl.html GNU GPL v3 or later
 */
class get_events extends external_api {
    /** Largest page a caller may ask for. */
    const MAX_LIMIT = 5000;
    /** Longest wait for new rows; one call (one log row of its own) per wait when idle. */
    const MAX_WAIT = 60;

    /**
     * Parameters.
     *
     * @return external_function_parameters
     */
    public static function execute_parameters(): external_function_parameters {
        return new external_function_parameters([
            'sinceid' => new external_value(PARAM_INT, 'Return rows with id greater than this', VALUE_DEFAULT, 0),
            'limit' => new external_value(PARAM_INT, 'Rows per page, 1..5000', VALUE_DEFAULT, 1000),
            'courseid' => new external_value(PARAM_INT, 'Only this course (0 = whole site)', VALUE_DEFAULT, 0),
            'waitseconds' => new external_value(PARAM_INT,
                'When there is no row yet, wait up to this many seconds (0..' . self::MAX_WAIT . ') for one',
                VALUE_DEFAULT, 0),
        ]);
    }

    /**
     * Log rows after sinceid.
     *
     * @param int $sinceid last id the caller has
     * @param int $limit page size
     * @param int $courseid course filter, 0 for the site
     * @param int $waitseconds long poll: wait this long for a first row when there is none
     * @return array
     */
    public static function execute(int $sinceid = 0, int $limit = 1000, int $courseid = 0,
            int $waitseconds = 0): array {
        global $DB, $USER;
        $params = self::validate_parameters(self::execute_parameters(),
            ['sinceid' => $sinceid, 'limit' => $limit, 'courseid' => $courseid, 'waitseconds' => $waitseconds]);
        $sinceid = $params['sinceid'];
        $limit = $params['limit'];
        $courseid = $params['courseid'];
        $waitseconds = $params['waitseconds'];
        if ($limit < 1 || $limit > self::MAX_LIMIT || $sinceid < 0 || $courseid < 0 ||
                $waitseconds < 0 || $waitseconds > self::MAX_WAIT) {
            throw new invalid_parameter_exception('limit must be 1..' . self::MAX_LIMIT .
                ', waitseconds 0..' . self::MAX_WAIT . ', sinceid and courseid must not be negative');
        }
        $context = $courseid ? context_course::instance($courseid) : context_system::instance();
        self::validate_context($context);
        require_capability('report/log:view', $context);

        $warnings = [];
        $reader = self::reader();
        if ($reader === null) {
            $warnings[] = ['item' => 'logstore', 'itemid' => 0, 'warningcode' => 'noreader',
                'message' => 'The standard log store is not enabled (Site administration > Plugins > Logging).'];
            return ['events' => [], 'lastid' => $sinceid, 'hasmore' => false, 'warnings' => $warnings];
        }

        // The caller's own rows (every web-service call writes one) are never returned: the
        // connector's polling must not feed back into the stream, nor wake a long poll.
        $select = 'id > :sinceid AND userid <> :caller';
        $sqlparams = ['sinceid' => $sinceid, 'caller' => (int)$USER->id];
        if ($courseid) {
            $select .= ' AND courseid = :courseid';
            $sqlparams['courseid'] = $courseid;
        }
        if (!has_capability('moodle/site:viewanonymousevents', $context)) {
            $select .= ' AND anonymous = 0';
        }
        // The id window first (one id more than asked tells whether there is a next page), so
        // rows the reader cannot restore (events of removed plugins) are passed over, never
        // stuck on: lastid is the window's end either way.
        $ids = array_keys($DB->get_records_select('logstore_standard_log', $select, $sqlparams,
            'id ASC', 'id', 0, $limit + 1));
        $deadline = microtime(true) + $waitseconds;
        while (!$ids && microtime(true) < $deadline) {
            // Long poll: an idle connector makes one call (and one log row) per wait, not one
            // per idle interval. Other requests write their log rows when they end.
            usleep(500000);
            $ids = array_keys($DB->get_records_select('logstore_standard_log', $select, $sqlparams,
                'id ASC', 'id', 0, $limit + 1));
        }
        $hasmore = count($ids) > $limit;
        $ids = array_slice($ids, 0, $limit);
        $rows = [];
        $lastid = $ids ? (int)end($ids) : $sinceid;
        if ($ids) {
            $sqlparams['lastid'] = $lastid;
            $events = $reader->get_events_select($select . ' AND id <= :lastid', $sqlparams, 'id ASC', 0, $limit);
            foreach ($events as $id => $event) {
                $rows[] = self::row((int)$id, $event);
            }
        }
        return ['events' => $rows, 'lastid' => $lastid, 'hasmore' => $hasmore, 'warnings' => $warnings];
    }

    /**
     * The standard log store's SQL reader, if enabled (rows are read from its table).
     *
     * @return \core\log\sql_reader|null
     */
    protected static function reader(): ?\core\log\sql_reader {
        $readers = get_log_manager()->get_readers('\core\log\sql_reader');
        return $readers['logstore_standard'] ?? null;
    }

    /**
     * One restored event as a log row (the columns of logstore_standard_log).
     *
     * @param int $id log id
     * @param \core\event\base $event restored event
     * @return array
     */
    protected static function row(int $id, \core\event\base $event): array {
        $data = $event->get_data();
        $extra = $event->get_logextra();
        return [
            'id' => $id,
            'eventname' => $data['eventname'],
            'component' => $data['component'],
            'action' => $data['action'],
            'target' => $data['target'],
            'objecttable' => $data['objecttable'],
            'objectid' => $data['objectid'],
            'crud' => $data['crud'],
            'edulevel' => (int)$data['edulevel'],
            'contextid' => (int)$data['contextid'],
            'contextlevel' => (int)$data['contextlevel'],
            'contextinstanceid' => (int)$data['contextinstanceid'],
            'userid' => (int)$data['userid'],
            'courseid' => (int)$data['courseid'],
            'relateduserid' => $data['relateduserid'],
            'anonymous' => (int)$data['anonymous'],
            'other' => json_encode($data['other']),
            'timecreated' => (int)$data['timecreated'],
            'origin' => $extra['origin'] ?? null,
            'ip' => $extra['ip'] ?? null,
            'realuserid' => $extra['realuserid'] ?? null,
        ];
    }

    /**
     * Return structure.
     *
     * @return external_single_structure
     */
    public static function execute_returns(): external_single_structure {
        $nullint = fn(string $d) => new external_value(PARAM_INT, $d, VALUE_OPTIONAL, null, NULL_ALLOWED);
        $nulltext = fn(string $d) => new external_value(PARAM_RAW, $d, VALUE_OPTIONAL, null, NULL_ALLOWED);
        return new external_single_structure([
            'events' => new external_multiple_structure(new external_single_structure([
                'id' => new external_value(PARAM_INT, 'Log id, increasing'),
                'eventname' => new external_value(PARAM_RAW, 'Event class, e.g. \\core\\event\\course_viewed'),
                'component' => new external_value(PARAM_COMPONENT, 'Component'),
                'action' => new external_value(PARAM_ALPHANUMEXT, 'Action'),
                'target' => new external_value(PARAM_ALPHANUMEXT, 'Target'),
                'objecttable' => $nulltext('Object table'),
                'objectid' => $nullint('Object id'),
                'crud' => new external_value(PARAM_ALPHA, 'c, r, u or d'),
                'edulevel' => new external_value(PARAM_INT, 'Educational level'),
                'contextid' => new external_value(PARAM_INT, 'Context id'),
                'contextlevel' => new external_value(PARAM_INT, 'Context level'),
                'contextinstanceid' => new external_value(PARAM_INT, 'Context instance id'),
                'userid' => new external_value(PARAM_INT, 'Acting user'),
                'courseid' => new external_value(PARAM_INT, 'Course id (0 = site)'),
                'relateduserid' => $nullint('Related user'),
                'anonymous' => new external_value(PARAM_INT, '1 if anonymous'),
                'other' => new external_value(PARAM_RAW, 'Other data as JSON text'),
                'timecreated' => new external_value(PARAM_INT, 'Unix time'),
                'origin' => $nulltext('cli, web, ws, restore'),
                'ip' => $nulltext('IP address'),
                'realuserid' => $nullint('Real user when logged in as'),
            ])),
            'lastid' => new external_value(PARAM_INT, 'Id of the last row returned (the next sinceid)'),
            'hasmore' => new external_value(PARAM_BOOL, 'More rows after lastid'),
            'warnings' => new external_warnings(),
        ]);
    }
}
